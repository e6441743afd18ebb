"""How big a vehicle is next to the other vehicles seen at the same place in the picture.

A camera sees vehicles at one place from one distance, so a box several times the area of the
vehicles that usually pass there is a bus or a truck, whatever the angle: the evidence a COCO
detector lacks on a school bus seen from above. On a road plane a vehicle's apparent size
changes smoothly with its height in the picture (nearer is lower and bigger), so the typical
size is a straight line of sqrt(area) over the box centre's y, fitted to the other tracks'
views with Theil-Sen (medians of slopes and offsets): most vehicles are cars, and a few buses
or merged boxes do not move the fit. No calibration, no per-camera setting.

The cue only adds "heavy" evidence: a small truck (a pickup) or a box truck seen head-on is not
much bigger than a car, and size says nothing against it.
"""

from __future__ import annotations

from collections import deque

import numpy as np

MIN_REFS = 6  # the fit needs at least this many reference views ...
MIN_TRACKS = 4  # ... of at least this many other tracks, else no cue
MIN_DY = 0.05  # view pairs closer than this in y give no slope
KEEP = 200  # reference views remembered per camera (the latest)
HEAVY_FROM = 2.5  # area ratio to the local median where the heavy vote starts ...
HEAVY_FULL = 5.0  # ... and where it is full


class SizeCue:
    """Reference boxes of one camera's vehicles and the heavy vote they imply for a new box."""

    def __init__(self) -> None:
        self._refs: deque[tuple[int, float, float, float]] = deque(maxlen=KEEP)  # track, cx, cy, area

    def observe(self, track: int, box: np.ndarray) -> None:
        """Remember one whole (not edge-cut) view of a vehicle."""
        x0, y0, x1, y1 = (float(v) for v in box)
        self._refs.append((track, (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * (y1 - y0)))

    def ratio(self, track: int, box: np.ndarray) -> float | None:
        """Area of ``box`` over the typical area of the other tracks' views at its height in the
        picture (None: too few references yet)."""
        x0, y0, x1, y1 = (float(v) for v in box)
        refs = [(y, a) for t, _, y, a in self._refs if t != track]
        if len(refs) < MIN_REFS or len({t for t, *_ in self._refs if t != track}) < MIN_TRACKS:
            return None
        ys = np.array([y for y, _ in refs])
        sizes = np.sqrt([a for _, a in refs])
        dy = ys[None, :] - ys[:, None]
        pairs = np.abs(dy) >= MIN_DY
        slope = float(np.median((sizes[None, :] - sizes[:, None])[pairs] / dy[pairs])) if pairs.any() else 0.0
        offset = float(np.median(sizes - slope * ys))
        typical = offset + slope * (y0 + y1) / 2
        if typical <= 0:
            return None  # the fit does not reach this far up the picture
        return (x1 - x0) * (y1 - y0) / typical**2

    def heavy(self, track: int, box: np.ndarray) -> float | None:
        """The heavy vote of ``box``: 0 up to HEAVY_FROM times the local median area, rising to 1
        at HEAVY_FULL (None: no references near it)."""
        r = self.ratio(track, box)
        if r is None:
            return None
        return float(np.clip((r - HEAVY_FROM) / (HEAVY_FULL - HEAVY_FROM), 0.0, 1.0))
