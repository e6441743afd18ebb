"""SQLite persistence for open visits and anomalies, so a restart or ``kill -9`` loses none.

One small table per record kind, each row a JSON document. WAL with ``synchronous=NORMAL``
survives a killed process (a power cut may lose the last commits), like the outbox beside it.
Not thread-safe on its own: the engine calls it under its lock.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

TABLES = ("visits", "anomalies")
KEEP_CLOSED = 7 * 86400.0  # closed rows are kept this long so "already resolved" survives a restart


class Store:
    """Open records by table; ``path=None`` keeps them in memory (tests, replays without state)."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        for table in TABLES:
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {table} "
                "(id TEXT PRIMARY KEY, open INTEGER NOT NULL, updated REAL NOT NULL, data TEXT NOT NULL)"
            )

    def put(self, table: str, record_id: str, data: dict[str, Any], *, is_open: bool, updated: float) -> None:
        """Insert or replace one record (autocommit: each write is durable on its own)."""
        self._db.execute(
            f"INSERT OR REPLACE INTO {table} (id, open, updated, data) VALUES (?, ?, ?, ?)",
            (record_id, int(is_open), updated, json.dumps(data, separators=(",", ":"))),
        )

    def load_open(self, table: str) -> list[dict[str, Any]]:
        """Every open record, oldest first."""
        rows = self._db.execute(f"SELECT data FROM {table} WHERE open = 1 ORDER BY rowid").fetchall()
        return [json.loads(r[0]) for r in rows]

    def get(self, table: str, record_id: str) -> dict[str, Any] | None:
        """One record, open or closed."""
        row = self._db.execute(f"SELECT data FROM {table} WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else json.loads(row[0])

    def prune(self, now: float) -> None:
        """Forget closed records older than a week."""
        for table in TABLES:
            self._db.execute(f"DELETE FROM {table} WHERE open = 0 AND updated < ?", (now - KEEP_CLOSED,))

    def close(self) -> None:
        """Close the database."""
        self._db.close()
