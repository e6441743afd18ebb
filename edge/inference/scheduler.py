"""Fair shares of the CPU for many cameras over shared models.

Each camera thread asks for a *turn* before it processes a frame; at most ``slots`` turns run
at once (default: two per CPU core, see DEFAULT_SLOTS_PER_CORE). When a slot
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
from dataclasses import dataclass, field

# Two turns per core: a turn is more than its inference (frame hand-over, motion gate, tracking,
# waking the thread), so one per core left cores idle. 16 cameras on 2 cores (bench/cameras.py):
# 1 per core 11-14% of frames dropped, 1.5 per core 6.9%, 2 per core 1.2%; 4 per core no better.
DEFAULT_SLOTS_PER_CORE = 2


@dataclass
class _Camera:
    priority: float = 1.0
    vtime: float = 0.0
    waiting: bool = False
    granted: threading.Event = field(default_factory=threading.Event)
    turns: int = 0
    busy_seconds: float = 0.0
    wait_seconds: float = 0.0


class FairScheduler:
    """At most ``slots`` cameras process at once; the next one is the least served (weighted).

    A slot is handed over directly: the camera ending a turn picks the next one and wakes only
    that thread. (Waking every waiter to let them race for the slot left a slot idle for ~40% of
    the time at 16 cameras: each woken thread needs the GIL just to find it is not next.)
    """

    def __init__(self, slots: int | None = None) -> None:
        self.slots = max(1, slots or DEFAULT_SLOTS_PER_CORE * (os.cpu_count() or 1))
        self._lock = threading.Lock()
        self._cams: dict[str, _Camera] = {}
        self._running = 0
        self._vclock = 0.0  # virtual time of the latest turn granted

    def add(self, camera: str, priority: float = 1.0) -> None:
        """Register ``camera`` (optional: ``turn`` registers unknown cameras with priority 1)."""
        with self._lock:
            cam = self._cams.setdefault(camera, _Camera())
            cam.priority = max(1e-3, float(priority))

    @contextmanager
    def turn(self, camera: str) -> Iterator[None]:
        """Hold one processing slot for ``camera`` for the duration of the ``with`` block."""
        t_wait = time.monotonic()
        with self._lock:
            cam = self._cams.get(camera)
            if cam is None:
                cam = self._cams[camera] = _Camera()
            cam.vtime = max(cam.vtime, self._vclock)  # idle cameras do not bank credit
            cam.granted.clear()
            if self._running < self.slots:  # a free slot means nobody is waiting
                self._grant(cam)
            else:
                cam.waiting = True
        cam.granted.wait()
        t0 = time.monotonic()
        try:
            yield
        finally:
            busy = time.monotonic() - t0
            with self._lock:
                self._running -= 1
                cam.vtime += busy / cam.priority
                cam.turns += 1
                cam.busy_seconds += busy
                cam.wait_seconds += t0 - t_wait
                waiting = [c for c in self._cams.values() if c.waiting]
                if waiting:
                    self._grant(min(waiting, key=lambda c: c.vtime))

    def _grant(self, cam: _Camera) -> None:
        """Give ``cam`` a slot (lock held)."""
        cam.waiting = False
        self._running += 1
        self._vclock = max(self._vclock, cam.vtime)
        cam.granted.set()

    def running(self) -> tuple[int, int]:
        """(turns running, cameras waiting) now."""
        with self._lock:
            return self._running, sum(c.waiting for c in self._cams.values())

    def stats(self) -> dict[str, dict[str, float]]:
        """Per camera: turns, busy and waiting seconds (for tests and the bench)."""
        with self._lock:
            return {
                n: {"turns": c.turns, "busy_seconds": c.busy_seconds, "wait_seconds": c.wait_seconds}
                for n, c in self._cams.items()
            }
