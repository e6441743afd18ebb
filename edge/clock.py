"""Time as a dependency: rules and replays never call ``time.time()`` themselves.

Live cameras run on :class:`SystemClock`; ``edge replay`` drives a :class:`ManualClock` from the
video's own timeline, and tests drive one by hand, so time-based rules (after hours, overstay,
unresolved visits) are reproducible run to run.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current time as UTC epoch seconds."""

    def now(self) -> float: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        """``time.time()``."""
        return time.time()


class ManualClock:
    """A clock that only moves when told to (simulated time, a video's timeline)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        """The time last set."""
        with self._lock:
            return self._now

    def set(self, t: float) -> None:
        """Move to ``t``; never backwards (a late frame must not rewind rules)."""
        with self._lock:
            self._now = max(self._now, float(t))

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``."""
        with self._lock:
            self._now += max(0.0, float(seconds))
