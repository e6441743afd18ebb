"""Directed counting lines: which tracks crossed which line, and which way.

A crossing is judged on the track's bottom-centre path from its first detection (tentative
frames included), so a vehicle confirmed only after it passed the line still counts. A point
must get ``HYSTERESIS`` past the line before the track counts as on that side, so a box
jittering on the line never flaps; a track counts again only after really going back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from edge.config import LineConfig
from edge.tracking.state import LineProgress
from edge.tracking.tracker import Track

HYSTERESIS = 0.02  # normalised distance past the line (about 9 px on a 432 px frame)
END_MARGIN = 0.02  # how far past a line's end points a path may cross and still count
_DIRECTIONS = {"up": (0.0, -1.0), "down": (0.0, 1.0), "left": (-1.0, 0.0), "right": (1.0, 0.0)}


@dataclass(frozen=True)
class Crossing:
    """Track crossed line ``line`` going ``dir`` at time ``at`` (interpolated on its path)."""

    line: str
    dir: Literal["in", "out"]
    at: float


class CountingLine:
    """One configured line as geometry: signed distance (positive on the in side) and position along it."""

    def __init__(self, name: str, cfg: LineConfig) -> None:
        self.name = name
        self.cfg = cfg
        p0, p1 = (np.asarray(p, np.float64) for p in cfg.points)
        self.p0 = p0
        self.along = (p1 - p0) / np.linalg.norm(p1 - p0)
        normal = np.array([-self.along[1], self.along[0]])
        # orient the normal towards the in side: moving along it is moving "in"
        self.normal = normal if float(normal @ _DIRECTIONS[cfg.in_]) > 0 else -normal
        self.length = float(np.linalg.norm(p1 - p0))

    def measure(self, x: float, y: float) -> tuple[float, float]:
        """(signed distance from the line, position along it as a fraction of its length)."""
        d = np.array([x, y]) - self.p0
        return float(d @ self.normal), float(d @ self.along) / self.length


class LineCounter:
    """Judges tracks' paths against every counting line of a camera."""

    def __init__(self, lines: dict[str, LineConfig]) -> None:
        self.lines = [CountingLine(name, cfg) for name, cfg in lines.items()]

    def __bool__(self) -> bool:
        return bool(self.lines)

    def crossings(self, t: Track) -> list[Crossing]:
        """Crossings in the part of ``t``'s trajectory not judged yet, in time order."""
        st = t.state
        points = st.trajectory[st.judged :]
        st.judged = len(st.trajectory)
        out: list[Crossing] = []
        for ts, x, y in points:
            for line in self.lines:
                c = _step(line, st.lines.setdefault(line.name, LineProgress()), ts, x, y)
                if c is not None:
                    out.append(c)
        return sorted(out, key=lambda c: c.at)


def _step(line: CountingLine, p: LineProgress, ts: float, x: float, y: float) -> Crossing | None:
    dist, along = line.measure(x, y)
    if p.last is not None and (p.last[1] > 0) != (dist > 0):
        # the path went through the (infinite) line between the last point and this one
        t0, d0, a0 = p.last
        f = d0 / (d0 - dist) if d0 != dist else 1.0
        p.cross_at = t0 + f * (ts - t0)
        a = a0 + f * (along - a0)
        p.cross_on_line = -END_MARGIN <= a <= 1 + END_MARGIN
    p.last = (ts, dist, along)
    if abs(dist) < HYSTERESIS:
        return None
    side = 1 if dist > 0 else -1
    previous, p.side = p.side, side
    if previous != -side or p.cross_at is None:
        if previous == side:  # back on the side it was on: a dip into the line is no crossing
            p.cross_at, p.cross_on_line = None, False
        return None
    crossed_here, at = p.cross_on_line, p.cross_at
    p.cross_at, p.cross_on_line = None, False
    if not crossed_here:  # went round the end of the line
        return None
    return Crossing(line.name, "in" if side > 0 else "out", at)
