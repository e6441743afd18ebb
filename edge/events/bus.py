"""The single entry point for events: stamps device and sequence number, then fans out.

Stamping here (not in the pipeline) keeps one authority for ``seq``, and doing it under one
lock together with the sink writes makes the JSONL file, stdout and the outbox see every
camera's events in ``seq`` order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from edge.events.schema import Event
from edge.events.sinks import Sink

log = logging.getLogger("edge.events.bus")


class SequenceSource(Protocol):
    """Anything with ``next(camera) -> int`` and ``close()`` (Sequencer, PersistentSequencer)."""

    def next(self, camera: str) -> int: ...

    def close(self) -> None: ...


class Processor(Protocol):
    """A stage that reads delivered events and derives new ones (the rule engine).

    It sees every stamped event (its own outputs included, so it must ignore what it does not
    want) and never frames or models; ``tick`` lets time-based rules fire without an event.
    """

    def process(self, event: Event) -> list[Event]: ...

    def tick(self, now: float) -> list[Event]: ...


@runtime_checkable
class ClosingProcessor(Protocol):
    """A processor with last events to emit when the bus closes (a final partial period)."""

    def close(self) -> list[Event] | None: ...


class Emitter(Protocol):
    """Where events go to be stamped and delivered (the :class:`EventBus`)."""

    def emit(self, event: Event) -> Event: ...


ProcessorFactory = Callable[[Emitter], Processor]
"""Builds a processor that emits events of its own into the bus it is given (the command
handler's ``ack`` events): the bus calls it once, at construction, with itself."""


class EventBus:
    """Stamp, count and deliver events to a sink (usually a :class:`FanOut`), then hand each
    delivered event to the processors and emit what they derive the same way.

    The processors are fixed at construction: ``processors``, then one built by each of
    ``emitting`` (processors that need the bus to emit into), in that order."""

    def __init__(
        self,
        device: str,
        sink: Sink,
        sequencer: SequenceSource,
        on_event: Callable[[Event], None] | None = None,
        processors: Sequence[Processor] | None = None,
        emitting: Sequence[ProcessorFactory] = (),
    ) -> None:
        self.device = device
        self.processors: list[Processor] = list(processors or [])
        self.sink = sink
        self.sequencer = sequencer
        self.on_event = on_event
        self.counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.processors += [build(self) for build in emitting]  # last: they get a complete bus

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
        for proc in self.processors:
            self._emit_derived(proc, lambda p=proc: p.process(stamped))  # type: ignore[misc]
        return stamped

    def tick(self, now: float) -> None:
        """Let time-based processors fire (called about once a second, or per replayed frame)."""
        for proc in self.processors:
            self._emit_derived(proc, lambda p=proc: p.tick(now))  # type: ignore[misc]

    def _emit_derived(self, proc: Processor, produce: Callable[[], list[Event]]) -> None:
        # A processor's bug is logged and never stops delivery of the event that triggered it.
        try:
            derived = produce()
        except Exception:
            log.exception("processor %s failed", type(proc).__name__)
            return
        for event in derived:
            if not self._closed:
                self.emit(event)

    def close(self) -> None:
        """Let processors emit their last events (a final partial period) and close them, newest
        first so earlier ones still see those events; then close the sinks (MQTT drains, then
        goes offline) and save the sequence numbers."""
        with self._lock:
            if self._closed:
                return
        for proc in reversed(self.processors):
            if isinstance(proc, ClosingProcessor):
                self._emit_derived(proc, lambda c=proc: c.close() or [])  # type: ignore[misc]
        with self._lock:
            self._closed = True
        try:
            self.sink.close()
        finally:
            self.sequencer.close()
