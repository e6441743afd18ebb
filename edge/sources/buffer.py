"""The hand-over point between a reader thread and its consumer."""

from __future__ import annotations

import threading
import time
from collections import deque

from edge.types import Frame


class FrameBuffer:
    """A small frame queue with two policies.

    ``latest=True`` (live cameras): ``put`` never blocks; when full the oldest frame is
    dropped, so a slow consumer always gets recent frames instead of a growing lag.
    ``latest=False`` (file replay): ``put`` blocks while full, so no frame is ever lost.
    """

    def __init__(self, capacity: int, *, latest: bool) -> None:
        self._frames: deque[Frame] = deque()
        self._capacity = max(1, capacity)
        self._latest = latest
        self._cond = threading.Condition()
        self._closed = False

    def put(self, frame: Frame) -> int:
        """Add a frame; returns how many older frames were dropped to make room."""
        with self._cond:
            if not self._latest:
                while len(self._frames) >= self._capacity and not self._closed:
                    self._cond.wait()
            if self._closed:
                return 0
            dropped = 0
            while len(self._frames) >= self._capacity:
                self._frames.popleft()
                dropped += 1
            self._frames.append(frame)
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest waiting frame; None on timeout or once closed and empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._frames:
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame = self._frames.popleft()
            self._cond.notify_all()
            return frame

    def close(self, *, discard: bool = False) -> None:
        """No more frames will come; wake every waiter. ``discard`` drops waiting frames."""
        with self._cond:
            self._closed = True
            if discard:
                self._frames.clear()
            self._cond.notify_all()

    @property
    def drained(self) -> bool:
        """Closed and nothing left to read."""
        with self._cond:
            return self._closed and not self._frames
