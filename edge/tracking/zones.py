"""Zones: named polygons evaluated on the bottom centre of an object's box."""

from __future__ import annotations

import numpy as np

from edge.config import ZoneConfig
from edge.tracking.geometry import points_in_polygon


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
