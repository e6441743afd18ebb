"""Whole-frame state over time ("taxi on the rank" / "rank empty"): which class is on screen,
since when, and for how long, from a per-frame classifier, with hysteresis against flicker.

When no class holds (top score below ``min_score``, or a class outside ``labels``) the state is
:data:`NONE`, a state like any other, so consecutive states tile the whole timeline from the
first classified frame to :meth:`SceneState.close` with no gaps (screen-time totals add up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NONE = "none"  # the label of "none of the classes"


@dataclass(frozen=True)
class SceneChange:
    """A state began (``start``) or ended (``end``, with its duration)."""

    phase: Literal["start", "end"]
    label: str
    score: float
    since: float
    at: float

    @property
    def duration(self) -> float:
        """Seconds the state held (for ``end``)."""
        return self.at - self.since


class SceneState:
    """Feed the top class of each classified frame; get start/end changes back."""

    def __init__(self, min_score: float = 0.5, min_frames: int = 2, labels: list[str] | None = None) -> None:
        self.min_score = min_score
        self.min_frames = min_frames
        self.labels = set(labels or [])
        self.current: str | None = None  # None only before the first state holds, and after close
        self._origin: float | None = None  # first classified frame: the first state starts here
        self._last = 0.0  # last classified frame: the current state held at least until then
        self._since = 0.0
        self._score = 0.0
        self._candidate: str | None = None
        self._count = 0
        self._first_seen = 0.0

    def update(self, label: str, score: float, now: float) -> list[SceneChange]:
        """One classified frame. ``label`` below ``min_score`` or outside ``labels`` means :data:`NONE`."""
        if self._origin is None:
            self._origin = now
        self._last = max(self._last, now)
        held = score >= self.min_score and (not self.labels or label in self.labels)
        seen = label if held else NONE
        score = score if held else 0.0
        if seen == self.current:
            self._candidate, self._count = None, 0
            self._score = max(self._score, score)
            return []
        if seen != self._candidate:
            self._candidate, self._count, self._first_seen = seen, 0, now
        self._count += 1
        if self._count < self.min_frames:
            return []
        # the new state holds: it began when first seen, which is when the old one ended; the very
        # first state covers the frames before it settled too, so the timeline has no gap
        began = self._first_seen if self.current is not None else self._origin
        changes = self._end(began)
        self.current, self._since, self._score = seen, began, score
        self._candidate, self._count = None, 0
        changes.append(SceneChange("start", seen, score, began, began))
        return changes

    def close(self, now: float) -> list[SceneChange]:
        """End the current state at stream end or shutdown: at ``now``, but never before the last
        classified frame (the state held until then; a caller may only know an earlier time)."""
        return self._end(max(now, self._last))

    def _end(self, at: float) -> list[SceneChange]:
        if self.current is None:
            return []
        change = SceneChange("end", self.current, self._score, self._since, max(at, self._since))
        self.current = None
        return [change]
