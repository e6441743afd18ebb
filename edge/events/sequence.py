"""Per-camera sequence numbers that keep increasing across restarts.

Why persisted and not clock based: edge boxes (a Raspberry Pi has no RTC) often boot with a
wrong clock until NTP syncs, so ``boot time in ms`` can go backwards. A counter in the device's
SQLite state file cannot.

Why blocks: the file stores a *reservation* (the next unreserved number per camera), written
with a full fsync once per ``block`` events rather than once per event. A clean shutdown writes
the exact next number back, so clean restarts continue without a gap; after a crash or power
loss the numbers jump by less than ``block`` but never repeat.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("edge.events.sequence")


class PersistentSequencer:
    """Drop-in for :class:`edge.events.schema.Sequencer`, backed by a SQLite table ``seq``."""

    def __init__(self, path: str | Path, block: int = 1000) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._block = max(1, block)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self._path), check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL").fetchall()
        self._db.execute("PRAGMA synchronous=FULL").fetchall()  # rare writes: make each reservation durable
        self._db.execute("CREATE TABLE IF NOT EXISTS seq (camera TEXT PRIMARY KEY, next INTEGER NOT NULL)")
        self._next: dict[str, int] = {}
        self._limit: dict[str, int] = {}
        self._closed = False

    def _reserve(self, camera: str) -> None:
        # fetchall, not fetchone: an unfinished SELECT would hold the transaction (and lock) open
        rows = self._db.execute("SELECT next FROM seq WHERE camera = ?", (camera,)).fetchall()
        row = rows[0] if rows else None
        start = self._next.get(camera, row[0] if row else 0)
        limit = start + self._block
        self._db.execute(
            "INSERT INTO seq (camera, next) VALUES (?, ?) ON CONFLICT(camera) DO UPDATE SET next = excluded.next",
            (camera, limit),
        )
        self._next[camera] = start
        self._limit[camera] = limit

    def next(self, camera: str) -> int:
        """The next sequence number for ``camera`` (thread-safe)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("sequencer is closed")
            if camera not in self._next or self._next[camera] >= self._limit[camera]:
                self._reserve(camera)
            n = self._next[camera]
            self._next[camera] = n + 1
            return n

    def close(self) -> None:
        """Write the exact next numbers back (no gap after a clean restart) and close the file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                for camera, n in self._next.items():
                    self._db.execute("UPDATE seq SET next = ? WHERE camera = ?", (n, camera))
            except sqlite3.Error as err:  # a gap next time is acceptable, a crash on shutdown is not
                log.warning("could not save sequence numbers: %s", err)
            finally:
                self._db.close()
