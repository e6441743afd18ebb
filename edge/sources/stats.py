"""Per-camera counters, read by the metrics collector."""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass


@dataclass
class ReaderStats:
    """Plain counters of one camera reader.

    Written only by the reader thread (``frames_sampled`` only by the consumer in ``read``),
    so reading them from another thread without a lock is safe enough for metrics.
    """

    frames_read: int = 0  # frames decoded from the source
    frames_dropped: int = 0  # sampled frames replaced by a newer one before anyone read them
    frames_sampled: int = 0  # sampled frames handed to the consumer by read()
    reconnects: int = 0  # connection attempts after the first one
    stalls: int = 0  # connections dropped because no frame came for stall_timeout
    connected: bool = False  # frames are flowing on the current connection
    last_frame_time: float | None = None  # wall clock (epoch s) of the last frame read
    capture_fps: float = 0.0  # frames read per second over the last few seconds
    last_error: str | None = None  # last problem, credentials redacted

    def snapshot(self) -> ReaderStats:
        """A consistent-enough copy for reporting."""
        return dataclasses.replace(self)


class RateMeter:
    """Events per second over a sliding window of ``window`` seconds (monotonic times)."""

    def __init__(self, window: float = 5.0) -> None:
        self._window = window
        self._times: deque[float] = deque()

    def tick(self, now: float) -> float:
        """Record an event at ``now`` and return the current rate."""
        times = self._times
        times.append(now)
        while now - times[0] > self._window:
            times.popleft()
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def reset(self) -> None:
        """Forget history (after a disconnect the old rate means nothing)."""
        self._times.clear()
