"""Where events go: one small interface (``emit``/``close``) and four implementations.

``MqttSink`` only writes to the durable outbox (fast, never blocks on the network, never raises
for a full disk: the outbox then keeps the event in memory and counts what it must drop); the
publisher drains it. ``FanOut`` isolates sinks from each other: a full disk under the JSONL
file must not stop MQTT delivery, and the other way round.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from edge.events.mqtt import MqttPublisher
from edge.events.schema import Event

log = logging.getLogger("edge.events.sinks")


class Sink:
    """Base class: receives every emitted event."""

    name = "sink"

    def emit(self, event: Event) -> None:
        """Deliver (or queue) one event. May raise; :class:`FanOut` contains it."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release resources."""


class JsonlSink(Sink):
    """Appends one compact JSON line per event; flushed per event so readers see it at once."""

    name = "jsonl"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        line = event.to_json() + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()


class StdoutSink(Sink):
    """Prints one JSON line per event (for ``edge run`` in a terminal or a container log)."""

    name = "stdout"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        stream = self._stream or sys.stdout  # looked up late so pytest's capsys works
        with self._lock:
            stream.write(event.to_json() + "\n")
            stream.flush()


class MqttSink(Sink):
    """Queues events in the publisher's outbox on ``<prefix>/<device>/<camera>/events/<type>``."""

    name = "mqtt"

    def __init__(self, publisher: MqttPublisher, qos: int | None = None) -> None:
        self.publisher = publisher
        self.qos = publisher.cfg.qos if qos is None else qos

    def emit(self, event: Event) -> None:
        topic = self.publisher.topics.event(event.camera, event.type)
        self.publisher.outbox.put(topic, event.to_bytes(), qos=self.qos)
        self.publisher.wake()

    def close(self) -> None:
        """Drain for up to ``mqtt.drain_timeout``, go offline, close the outbox."""
        try:
            self.publisher.stop(self.publisher.cfg.drain_timeout)
        finally:
            self.publisher.outbox.close()


class FanOut(Sink):
    """Sends each event to every sink; a failing sink is logged (rate-limited) and skipped."""

    name = "fanout"

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = list(sinks)
        self.errors: dict[str, int] = {}
        self._last_log: dict[str, float] = {}

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception as err:
                self.errors[sink.name] = self.errors.get(sink.name, 0) + 1
                now = time.monotonic()
                if now - self._last_log.get(sink.name, -1e9) >= 60.0:
                    self._last_log[sink.name] = now
                    log.error("sink %s failed (%d error(s) so far): %s", sink.name, self.errors[sink.name], err)

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                log.exception("closing sink %s failed", sink.name)
