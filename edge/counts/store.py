"""The counter's state file: every camera's open interval and open crossings batch, and closed
ones until their ``count`` / ``crossings`` event is in the outbox. SQLite in WAL mode, like the
outbox: a write that returned survives kill -9 of the process (``synchronous=NORMAL``; a power cut
may lose the last second)."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from edge.counts.batch import Batch
from edge.counts.tally import Tally

log = logging.getLogger("edge.counts.store")


class CountStore:
    """Tables ``tally`` and ``batch``: rows ``(camera, start) -> JSON, closed``."""

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
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS batch (camera TEXT NOT NULL, start REAL NOT NULL, "
            "closed INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL, PRIMARY KEY (camera, start))"
        )

    def load(self) -> list[tuple[str, Tally, bool]]:
        """Every stored interval: (camera, tally, closed), oldest first."""
        return [(cam, Tally.from_dict(d), closed) for cam, d, closed in self._load("tally")]

    def save(self, camera: str, tally: Tally, closed: bool = False) -> None:
        """Write (replace) one interval."""
        self._save("tally", camera, tally.start, tally.to_dict(), closed)

    def delete(self, camera: str, start: float) -> None:
        """Forget an interval whose event was delivered to the sinks."""
        self._delete("tally", camera, start)

    def load_batches(self) -> list[tuple[str, Batch, bool]]:
        """Every stored crossings batch: (camera, batch, closed), oldest first."""
        return [(cam, Batch.from_dict(d), closed) for cam, d, closed in self._load("batch")]

    def save_batch(self, camera: str, batch: Batch, closed: bool = False) -> None:
        """Write (replace) one crossings batch."""
        self._save("batch", camera, batch.start, batch.to_dict(), closed)

    def delete_batch(self, camera: str, start: float) -> None:
        """Forget a batch whose event was delivered to the sinks."""
        self._delete("batch", camera, start)

    # table: "tally" or "batch" (constants of this class, never input)
    def _load(self, table: str) -> list[tuple[str, dict[str, Any], bool]]:
        with self._lock:
            rows = self._db.execute(f"SELECT camera, closed, data FROM {table} ORDER BY start, camera").fetchall()
        return [(cam, json.loads(data), bool(closed)) for cam, closed, data in rows]

    def _save(self, table: str, camera: str, start: float, state: dict[str, Any], closed: bool) -> None:
        data = json.dumps(state, separators=(",", ":"))
        with self._lock:
            self._db.execute(
                f"INSERT INTO {table} (camera, start, closed, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(camera, start) DO UPDATE SET closed = excluded.closed, data = excluded.data",
                (camera, start, int(closed), data),
            )

    def _delete(self, table: str, camera: str, start: float) -> None:
        with self._lock:
            self._db.execute(f"DELETE FROM {table} WHERE camera = ? AND start = ?", (camera, start))

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()
