"""``events.detail`` per camera: which events leave the device (docs/events.md, detail levels).

- ``tracks`` (default): every event.
- ``crossings``: no per-frame track or plate events; the crossings batched in one ``crossings``
  event per camera and minute (edge.counts.batching) instead of ``line`` events; zone, visit,
  state and everything of ``counts``.
- ``counts``: ``count`` (per interval), ``anomaly`` and ``screentime`` only: nothing per vehicle.

The filter sits in front of the sinks only: the processors (rules, counts) still see every event,
so a ``counts`` camera's anomalies and counts are the same as at ``tracks``. Sequence numbers are
stamped before the filter, so a filtered camera's ``seq`` has gaps by design.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge.events.schema import Event
from edge.events.sinks import Sink

_COUNTS = frozenset({"count", "anomaly", "screentime"})
LEVELS: dict[str, frozenset[str] | None] = {
    "tracks": None,  # everything
    "crossings": _COUNTS | {"crossings", "zone", "visit", "state"},
    "counts": _COUNTS,
}


BATCHED = "crossings"  # the level whose cameras send their line events batched (edge.counts.batching)


def keeps(level: str, event_type: str) -> bool:
    """Does a camera at ``level`` send events of ``event_type``?"""
    allowed = LEVELS[level]
    return allowed is None or event_type in allowed


@dataclass
class DetailSink(Sink):
    """Hands ``sink`` only the events each camera's level keeps (cameras not named: everything)."""

    sink: Sink
    levels: Mapping[str, str]
    name = "detail"

    def emit(self, event: Event) -> None:
        if keeps(self.levels.get(event.camera, "tracks"), event.type):
            self.sink.emit(event)

    def close(self) -> None:
        self.sink.close()
