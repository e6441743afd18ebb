"""What a failed write to a local SQLite file means, and how often to say so.

The outbox and the feedback store write on every event. When their disk fills up (or fails, or
turns read-only) every write fails the same way, so the cause is logged as one line, at most
once a minute, never as a traceback per event.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

# SQLite's primary result codes (extended codes keep them in the low byte) that mean "the file
# cannot be written" rather than "this statement is wrong".
_CAUSES = {
    13: "disk full",  # SQLITE_FULL
    10: "I/O error",  # SQLITE_IOERR
    8: "read-only",  # SQLITE_READONLY
    14: "cannot open",  # SQLITE_CANTOPEN
    11: "corrupt file",  # SQLITE_CORRUPT
    5: "locked by another process",  # SQLITE_BUSY
}


def describe_write_error(err: sqlite3.Error) -> str:
    """A short cause for the log and ``/healthz``, e.g. ``disk full (database or disk is full)``."""
    code = getattr(err, "sqlite_errorcode", None)
    detail = str(err) or type(err).__name__
    cause = _CAUSES.get(code & 0xFF) if isinstance(code, int) else None
    return f"{cause} ({detail})" if cause else detail


class LogThrottle:
    """``due()`` is True at most once per ``every`` seconds (the first call is always due)."""

    def __init__(self, every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        """True (and restart the period) if the last ``True`` is at least ``every`` seconds old."""
        now = self._clock()
        if self._last is None or now - self._last >= self.every:
            self._last = now
            return True
        return False

    def restart(self) -> None:
        """Count a line logged elsewhere as this period's line."""
        self._last = self._clock()
