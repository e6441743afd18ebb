"""Snapshots made off the camera thread: masking a picture costs a person detection and a
segmentation (~0.1-0.3 s here), which must not hold up the frames of the camera.

One daemon thread per camera takes jobs from a bounded queue; when it is full (a burst of track
starts while a model loads) the newest snapshot is skipped and counted, never sent unmasked.
Snapshots are best effort, as before: events never wait for them.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("edge.privacy")


class SnapshotWorker:
    """Runs ``job(*args)`` for each :meth:`submit` on one thread, in order."""

    def __init__(self, camera: str, job: Callable[..., Any], max_queue: int = 16) -> None:
        self.camera, self.job = camera, job
        self.skipped = 0  # snapshots not made because the queue was full
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._loop, name=f"edge-snapshots-{camera}", daemon=True)
        self._thread.start()

    def submit(self, *args: Any) -> bool:
        """Queue one snapshot; False (counted in ``skipped``) when the queue is full."""
        try:
            self._queue.put_nowait(args)
            return True
        except queue.Full:
            self.skipped += 1
            return False

    def close(self, timeout: float = 5.0) -> None:
        """Finish the queued snapshots (up to ``timeout`` s) and stop the thread."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            args = self._queue.get()
            if args is None:
                return
            try:
                self.job(*args)
            except Exception:  # noqa: BLE001 - one bad snapshot must not end the worker
                log.debug("camera %s: snapshot failed", self.camera, exc_info=True)
