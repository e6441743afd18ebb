"""Fair shares of the CPU for many cameras over shared models.

Each camera thread asks for a *turn* before it processes a frame; at most ``slots`` turns run
at once (default: the CPU cores - more only makes the inference threads fight). When a slot
frees, the waiting camera with the least *virtual time* goes next; a turn adds its duration
divided by the camera's ``priority`` to the camera's virtual time (weighted fair queueing, as
a CPU scheduler does). So when inference cannot keep up every camera still gets its share, a
busy camera (many objects, plates) cannot starve a quiet one, and ``priority: 2`` gets twice
the processing time of ``priority: 1``. A camera that was idle does not bank credit: it
rejoins at the smallest virtual time of the others.

The frame a camera processes is chosen *after* its turn begins (see ``edge.app``), so the
wait for a turn never makes a frame older: the newest frame wins and skipped ones are counted
as dropped by the camera.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class _Camera:
    priority: float = 1.0
    vtime: float = 0.0
    waiting: bool = False
    turns: int = 0
    busy_seconds: float = 0.0
    wait_seconds: float = 0.0


class FairScheduler:
    """At most ``slots`` cameras process at once; the next one is the least served (weighted)."""

    def __init__(self, slots: int | None = None) -> None:
        self.slots = max(1, slots or os.cpu_count() or 1)
        self._cond = threading.Condition()
        self._cams: dict[str, _Camera] = {}
        self._running = 0
        self._vclock = 0.0  # virtual time of the latest turn granted

    def add(self, camera: str, priority: float = 1.0) -> None:
        """Register ``camera`` (optional: ``turn`` registers unknown cameras with priority 1)."""
        with self._cond:
            cam = self._cams.setdefault(camera, _Camera())
            cam.priority = max(1e-3, float(priority))

    @contextmanager
    def turn(self, camera: str) -> Iterator[None]:
        """Hold one processing slot for ``camera`` for the duration of the ``with`` block."""
        t_wait = time.monotonic()
        with self._cond:
            cam = self._cams.get(camera)
            if cam is None:
                cam = self._cams[camera] = _Camera()
            cam.vtime = max(cam.vtime, self._vclock)  # idle cameras do not bank credit
            cam.waiting = True
            try:
                while self._running >= self.slots or not self._is_next(cam):
                    self._cond.wait()
            finally:
                cam.waiting = False
            self._running += 1
            self._vclock = max(self._vclock, cam.vtime)
        t0 = time.monotonic()
        try:
            yield
        finally:
            busy = time.monotonic() - t0
            with self._cond:
                self._running -= 1
                cam.vtime += busy / cam.priority
                cam.turns += 1
                cam.busy_seconds += busy
                cam.wait_seconds += t0 - t_wait
                self._cond.notify_all()

    def stats(self) -> dict[str, dict[str, float]]:
        """Per camera: turns, busy and waiting seconds (for tests and the bench)."""
        with self._cond:
            return {
                n: {"turns": c.turns, "busy_seconds": c.busy_seconds, "wait_seconds": c.wait_seconds}
                for n, c in self._cams.items()
            }

    def _is_next(self, cam: _Camera) -> bool:
        """True when no waiting camera has a smaller virtual time (ties: any order)."""
        return all(c.vtime >= cam.vtime for c in self._cams.values() if c.waiting and c is not cam)
