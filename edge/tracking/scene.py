"""Whole-frame state over time ("taxi on the rank" / "rank empty"): which class is on screen,
since when, and for how long, from a per-frame classifier, with hysteresis against flicker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class SceneChange:
    """A class came on screen (``start``) or left it (``end``, with its duration)."""

    phase: Literal["start", "end"]
    label: str
    score: float
    since: float
    at: float

    @property
    def duration(self) -> float:
        """Seconds the class was on screen (for ``end``)."""
        return self.at - self.since


class SceneState:
    """Feed the top class of each classified frame; get start/end changes back."""

    def __init__(self, min_score: float = 0.5, min_frames: int = 2, labels: list[str] | None = None) -> None:
        self.min_score = min_score
        self.min_frames = min_frames
        self.labels = set(labels or [])
        self.current: str | None = None
        self._since = 0.0
        self._score = 0.0
        self._candidate: str | None = None
        self._count = 0
        self._first_seen = 0.0

    def update(self, label: str, score: float, now: float) -> list[SceneChange]:
        """One classified frame. ``label`` below ``min_score`` or outside ``labels`` means none."""
        seen = label if score >= self.min_score and (not self.labels or label in self.labels) else None
        if seen == self.current:
            self._candidate, self._count = None, 0
            if seen is not None:
                self._score = max(self._score, score)
            return []
        if seen != self._candidate:
            self._candidate, self._count, self._first_seen = seen, 0, now
        self._count += 1
        if self._count < self.min_frames:
            return []
        # the new state holds: it began when first seen, which is when the old one ended
        changes = self.close(self._first_seen)
        self.current, self._since, self._score = seen, self._first_seen, score
        self._candidate, self._count = None, 0
        if seen is not None:
            changes.append(SceneChange("start", seen, score, self._since, self._first_seen))
        return changes

    def close(self, now: float) -> list[SceneChange]:
        """End the current class (stream end, or a new class took over)."""
        if self.current is None:
            return []
        change = SceneChange("end", self.current, self._score, self._since, now)
        self.current = None
        return [change]
