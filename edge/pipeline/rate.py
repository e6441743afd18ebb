"""Detection rate that follows the scene: ``detect.fps`` when nothing needs watching closely,
up to ``detect.burst_fps`` while a track moves fast or moves near a counting line.

With a ``RateDemand`` shared with the camera's reader, the reader hands frames on at the
higher rate only while this asks for it (a busy track seen on the last inferred frame); without
one it always does. Either way this decides, per frame, whether the detector runs on it. A quiet
scene (no track, or only parked ones) keeps the base rate, and with the demand wired its reader
does no burst-rate work either, so its CPU does not grow; a small fast vehicle, which at 5 fps
moves more than its own length between samples and crosses a line between two of them, gets the
samples it needs to be tracked and counted.
"""

from __future__ import annotations

from collections.abc import Iterable

from edge.config import DetectConfig
from edge.sources.sampling import SLACK, RateDemand
from edge.tracking import Track
from edge.tracking.lines import LineCounter

# speeds are in the track's own box sizes per base period (1 / detect.fps): what matters for
# association is how far a vehicle moves between samples compared with its size (a big car near
# the camera can be slow on that scale while a small far one moving as fast on screen is not)
FAST = 0.35  # moves a third of its length between base samples: IoU with its prediction gets thin
NEAR_LINE_SPEED = 0.15  # near a line, a slower track already gets the burst (below FAST, or this never fires)
NEAR_LINE = 0.1  # normalised distance of a track's bottom centre to a line that counts as near


class DetectionRate:
    """Whether the detector runs on the frame at a given time."""

    def __init__(self, cfg: DetectConfig, lines: LineCounter, demand: RateDemand | None = None) -> None:
        """``demand``: shared with the camera's reader, which then samples at the burst rate only
        while :meth:`watch` asks for it (None: the reader always delivers at the burst rate)."""
        self.demand = demand
        self.base = 1.0 / cfg.fps
        self.burst = 1.0 / cfg.burst_fps if cfg.burst_fps and cfg.burst_fps > cfg.fps else None
        self.lines = lines
        self._last: float | None = None

    def due(self, now: float, tracks: Iterable[Track]) -> bool:
        """True when the frame at ``now`` should be inferred (then call :meth:`ran`)."""
        if self._last is None or self.burst is None:
            return True
        since = now - self._last
        if since >= self.base * (1 - SLACK) or since < 0:
            return True
        return since >= self.burst * (1 - SLACK) and any(self._busy(t) for t in tracks)

    def ran(self, now: float) -> None:
        """The detector ran on the frame at ``now``."""
        self._last = now

    def watch(self, now: float, tracks: Iterable[Track]) -> None:
        """After the frame at ``now`` was inferred: while a track is busy, ask the reader for the
        next frame at the burst rate (so it hands on exactly the frames :meth:`due` picks)."""
        if self.demand is not None and self.burst is not None and any(self._busy(t) for t in tracks):
            self.demand.busy_at = now

    def _busy(self, t: Track) -> bool:
        if t.last_det < 0:  # not seen last time (leaving, occluded): its prediction is no measure
            return False
        box = t.last_box
        size = float(max(min(box[2] - box[0], box[3] - box[1]), 1e-3))
        step = t.speed * self.base / size  # box sizes moved per base period
        if step >= FAST:
            return True
        if step < NEAR_LINE_SPEED or not self.lines:
            return False
        box = t.box  # the Kalman prediction: where it is now, not where it was last seen
        x, y = float(box[0] + box[2]) / 2, float(box[3])
        return any(abs(line.measure(x, y)[0]) < NEAR_LINE for line in self.lines.lines)
