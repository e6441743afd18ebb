"""The single entry point for events: stamps device and sequence number, then fans out.

Stamping here (not in the pipeline) keeps one authority for ``seq``, and doing it under one
lock together with the sink writes makes the JSONL file, stdout and the outbox see every
camera's events in ``seq`` order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from edge.events.schema import Event
from edge.events.sinks import Sink

log = logging.getLogger("edge.events.bus")


class SequenceSource(Protocol):
    """Anything with ``next(camera) -> int`` and ``close()`` (Sequencer, PersistentSequencer)."""

    def next(self, camera: str) -> int: ...

    def close(self) -> None: ...


class EventBus:
    """Stamp, count and deliver events to a sink (usually a :class:`FanOut`)."""

    def __init__(
        self,
        device: str,
        sink: Sink,
        sequencer: SequenceSource,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.device = device
        self.sink = sink
        self.sequencer = sequencer
        self.on_event = on_event
        self.counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._closed = False

    def emit(self, event: Event) -> Event:
        """Stamp ``device`` and the camera's next ``seq`` and deliver; returns the stamped event."""
        with self._lock:
            if self._closed:
                raise RuntimeError("event bus is closed")
            stamped = event.model_copy(update={"device": self.device, "seq": self.sequencer.next(event.camera)})
            self.sink.emit(stamped)
            key = (stamped.camera, stamped.type)
            self.counts[key] = self.counts.get(key, 0) + 1
        if self.on_event is not None:
            try:
                self.on_event(stamped)
            except Exception:
                log.exception("event hook failed")
        return stamped

    def close(self) -> None:
        """Close the sinks (MQTT drains, then goes offline) and save the sequence numbers."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.sink.close()
        finally:
            self.sequencer.close()
