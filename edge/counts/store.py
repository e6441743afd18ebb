"""The counter's state file: every camera's open interval, and closed ones until their ``count``
event is in the outbox. SQLite in WAL mode, like the outbox: a write that returned survives
kill -9 of the process (``synchronous=NORMAL``; a power cut may lose the last second)."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path

from edge.counts.tally import Tally

log = logging.getLogger("edge.counts.store")


class CountStore:
    """Rows ``(camera, start) -> tally JSON, closed``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL").fetchall()
        self._db.execute("PRAGMA synchronous=NORMAL").fetchall()
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS tally (camera TEXT NOT NULL, start REAL NOT NULL, "
            "closed INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL, PRIMARY KEY (camera, start))"
        )

    def load(self) -> list[tuple[str, Tally, bool]]:
        """Every stored interval: (camera, tally, closed), oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT camera, closed, data FROM tally ORDER BY start, camera").fetchall()
        return [(cam, Tally.from_dict(json.loads(data)), bool(closed)) for cam, closed, data in rows]

    def save(self, camera: str, tally: Tally, closed: bool = False) -> None:
        """Write (replace) one interval."""
        data = json.dumps(tally.to_dict(), separators=(",", ":"))
        with self._lock:
            self._db.execute(
                "INSERT INTO tally (camera, start, closed, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(camera, start) DO UPDATE SET closed = excluded.closed, data = excluded.data",
                (camera, tally.start, int(closed), data),
            )

    def delete(self, camera: str, start: float) -> None:
        """Forget an interval whose event was delivered to the sinks."""
        with self._lock:
            self._db.execute("DELETE FROM tally WHERE camera = ? AND start = ?", (camera, start))

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()
