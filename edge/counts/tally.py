"""One camera's counts for one interval, and the ``count`` event they become.

``lines``: line -> direction -> vehicle type -> crossings. ``zones``: zone -> peak occupancy,
occupancy integrated over time (mean = area / up), total dwell of stays that ended, entries.
``up``: seconds of the interval the counter was running (an interval cut by an outage says so).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.events.schema import Event, utc_iso

_NS = uuid.UUID("7f0d5e0c-3b1a-5a43-9a55-0c0a7e1d2b61")  # count event ids: uuid5 in this namespace
MAX_GAP = 5.0  # s between two observations that still count as running (ticks come about every 1 s)


def count_id(device: str, camera: str, start: float) -> str:
    """The event id of a camera's interval: the same on every (re)publication, so consumers
    deduplicate a re-sent interval like any redelivered event."""
    return uuid.uuid5(_NS, f"{device}/{camera}/{start:.3f}").hex


@dataclass
class ZoneTally:
    """A zone over one interval."""

    peak: int = 0
    area: float = 0.0  # occupancy x seconds
    dwell: float = 0.0
    entries: int = 0


@dataclass
class Tally:
    """A camera's open (or closed, not yet confirmed delivered) interval."""

    start: float
    end: float
    lines: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    zones: dict[str, ZoneTally] = field(default_factory=dict)
    up: float = 0.0
    last: float | None = None  # latest observation inside the interval

    def crossing(self, line: str, direction: str, kind: str) -> None:
        """Count one crossing."""
        by_type = self.lines.setdefault(line, {}).setdefault(direction, {})
        by_type[kind] = by_type.get(kind, 0) + 1

    def observe(self, t: float, occupancy: dict[str, int], gap: float = MAX_GAP) -> None:
        """Time passes to ``t`` (clipped to the interval) with ``occupancy`` per zone until then;
        a step longer than ``gap`` s is an outage."""
        t = min(max(t, self.start), self.end)
        if self.last is not None and t > self.last:
            dt = t - self.last
            if dt <= gap:  # a longer silence is an outage: neither up nor occupied
                self.up += dt
                for name, n in occupancy.items():
                    if n:
                        self.zones.setdefault(name, ZoneTally()).area += n * dt
        if self.last is None or t > self.last:
            self.last = t

    def total(self) -> int:
        """Crossings of every line, direction and type."""
        return sum(n for dirs in self.lines.values() for types in dirs.values() for n in types.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (persisted)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tally:
        """Inverse of :meth:`to_dict`."""
        zones = {k: ZoneTally(**v) for k, v in d.get("zones", {}).items()}
        return cls(
            float(d["start"]), float(d["end"]), d.get("lines", {}), zones, float(d.get("up", 0.0)), d.get("last")
        )

    def event(self, device: str, camera: str, until: float | None = None) -> Event:
        """The compact ``count`` event of this interval (``ts`` = its end, or ``until`` for a
        partial one: the end of a replay)."""
        zones = {
            name: {
                "peak": z.peak,
                "mean": round(z.area / self.up, 2) if self.up else 0.0,
                "dwell": round(z.dwell, 1),
                "n": z.entries,
            }
            for name, z in sorted(self.zones.items())
        }
        attrs: dict[str, Any] = {
            "from": utc_iso(self.start),
            "period": _num(self.end - self.start),
            "up": round(min(self.up, self.end - self.start)),
            "lines": {
                k: {d: dict(sorted(t.items())) for d, t in sorted(v.items())} for k, v in sorted(self.lines.items())
            },
        }
        if zones:
            attrs["zones"] = zones
        return Event(
            id=count_id(device, camera, self.start),
            device="",
            camera=camera,
            type="count",
            ts=utc_iso(self.end if until is None else min(until, self.end)),
            attrs=attrs,
        )


def _num(x: float) -> float | int:
    return int(round(x)) if abs(x - round(x)) < 1e-6 else round(x, 3)
