"""Zones: named polygons evaluated on the bottom centre of an object's box, and per-zone
occupancy (which tracks are inside, when they entered)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from edge.config import ZoneConfig
from edge.tracking.geometry import points_in_polygon
from edge.tracking.tracker import Track


class Zones:
    """Which zones each box is in."""

    def __init__(self, zones: dict[str, ZoneConfig]) -> None:
        self._zones = zones

    def of(self, xyxy: np.ndarray, label: str) -> list[str]:
        """Names of the zones whose polygon contains the box's bottom centre (and admit ``label``)."""
        if not self._zones:
            return []
        foot = np.array([[(xyxy[0] + xyxy[2]) / 2, xyxy[3]]], np.float32)
        return [
            name
            for name, z in self._zones.items()
            if (not z.objects or label in z.objects) and bool(points_in_polygon(foot, z.coordinates)[0])
        ]


@dataclass(frozen=True)
class ZoneChange:
    """A track entered (``start``) or left (``end``) a zone; ``occupancy`` counts the tracks in
    the zone after the change, ``dwell`` the seconds it stayed (on ``end``)."""

    phase: Literal["start", "end"]
    zone: str
    at: float
    occupancy: int
    dwell: float | None = None


class ZoneOccupancy:
    """Which tracks are in which zone, turned into enter/leave changes."""

    def __init__(self, zones: dict[str, ZoneConfig]) -> None:
        self.members: dict[str, set[int]] = {name: set() for name in zones}

    def count(self, zone: str) -> int:
        """Tracks in ``zone`` now."""
        return len(self.members.get(zone, ()))

    def update(self, t: Track, zones: list[str], now: float) -> list[ZoneChange]:
        """Track ``t`` is in ``zones`` at ``now``: leaves first, then enters."""
        inside = t.state.zones_in
        changes = [self._leave(t, z, now) for z in list(inside) if z not in zones]
        for z in zones:
            if z not in inside:
                inside[z] = now
                self.members.setdefault(z, set()).add(t.id)
                changes.append(ZoneChange("start", z, now, self.count(z)))
        return changes

    def leave_all(self, t: Track, now: float) -> list[ZoneChange]:
        """The track ended: it leaves every zone it was in."""
        return [self._leave(t, z, now) for z in list(t.state.zones_in)]

    def _leave(self, t: Track, zone: str, now: float) -> ZoneChange:
        entered = t.state.zones_in.pop(zone)
        self.members.get(zone, set()).discard(t.id)
        return ZoneChange("end", zone, now, self.count(zone), round(now - entered, 2))
