"""Durable outbox: every MQTT message is on disk before it is published and leaves the disk only
after the broker acknowledged it.

SQLite in WAL mode, one row per message, ordered by an autoincrement id (= publish order).
``synchronous=NORMAL`` by default: a killed process loses nothing (WAL is written before commit
returns); a power cut may lose the last few commits but never corrupts the file. ``FULL`` trades
an fsync per event for power-cut safety (slow on SD cards).

Disk budget: the sum of stored topic + payload bytes plus a per-row overhead is kept under
``max_bytes``. When a new message does not fit, ``drop_oldest`` (default: fresh events matter
more than a backlog nobody has read for days) deletes the oldest rows, ``drop_newest`` refuses
the new one. Either way the drop is counted, logged (rate-limited) and never raises.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger("edge.events.outbox")

ROW_OVERHEAD = 64  # rough per-row cost of the SQLite record, rowid and page slack
_LOG_EVERY = 60.0  # seconds between "outbox full" warnings


@dataclass(frozen=True)
class OutboxRow:
    """One stored message."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


@dataclass(frozen=True)
class OutboxStats:
    """A snapshot of the outbox for metrics and the stats topic."""

    depth: int
    bytes: int
    max_bytes: int
    oldest_created: float | None
    dropped: int

    def oldest_age(self, now: float | None = None) -> float:
        """Seconds the oldest message has waited (0 when empty)."""
        if self.oldest_created is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - self.oldest_created)


class Outbox:
    """A FIFO of MQTT messages in a SQLite file, safe to use from several threads."""

    def __init__(
        self,
        path: str | Path,
        max_bytes: int = 256 * 1024 * 1024,
        when_full: Literal["drop_oldest", "drop_newest"] = "drop_oldest",
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.when_full = when_full
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30, isolation_level=None)
        # Every statement is read to the end: an unfinished one keeps its transaction, and after
        # a write SQLite's write lock, open and blocks the sequencer's connection to this file.
        self._db.execute("PRAGMA journal_mode=WAL").fetchall()
        self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}").fetchall()
        # Keep the WAL file from growing past a few MB after a big backlog is drained.
        self._db.execute("PRAGMA journal_size_limit=4194304").fetchall()
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,"
            " qos INTEGER NOT NULL, retain INTEGER NOT NULL, created REAL NOT NULL, size INTEGER NOT NULL)"
        )
        row = self._one("SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created) FROM outbox")
        self._depth, self._bytes, self._oldest = int(row[0]), int(row[1]), row[2]
        self.dropped = 0
        self._dropped_since_log = 0
        self._last_log = 0.0
        if self._depth:
            log.info(
                "outbox %s holds %d message(s) from a previous run; sending them first",
                self.path,
                self._depth,
            )

    def _one(self, sql: str, params: tuple | list = ()) -> tuple:
        """One row, with the statement closed at once: an open SELECT would keep this
        connection's transaction (and, after a write, SQLite's write lock) open."""
        cur = self._db.execute(sql, params)
        try:
            return tuple(cur.fetchone())
        finally:
            cur.close()

    # -- writing -------------------------------------------------------------------------------

    def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Store a message; returns its id, or None if it was dropped (``drop_newest`` when full)."""
        size = len(payload) + len(topic.encode("utf-8")) + ROW_OVERHEAD
        now = time.time()
        with self._lock:
            if self._bytes + size > self.max_bytes:
                if self.when_full == "drop_newest" or size > self.max_bytes:
                    self._count_drop(1, now)
                    return None
                self._drop_oldest_locked(self._bytes + size - self.max_bytes, now)
            cur = self._db.execute(
                "INSERT INTO outbox (topic, payload, qos, retain, created, size) VALUES (?, ?, ?, ?, ?, ?)",
                (topic, payload, qos, int(retain), now, size),
            )
            self._depth += 1
            self._bytes += size
            if self._oldest is None:
                self._oldest = now
            return int(cur.lastrowid or 0)

    def _drop_oldest_locked(self, need: int, now: float) -> None:
        freed, ids, after = 0, [], 0
        while freed < need:
            rows = self._db.execute(
                "SELECT id, size FROM outbox WHERE id > ? ORDER BY id LIMIT 256", (after,)
            ).fetchall()
            if not rows:
                break
            for row_id, size in rows:
                ids.append(row_id)
                freed += size
                after = row_id
                if freed >= need:
                    break
        self._delete_locked(ids)
        self._count_drop(len(ids), now)

    def _count_drop(self, n: int, now: float) -> None:
        self.dropped += n
        self._dropped_since_log += n
        if now - self._last_log >= _LOG_EVERY:
            log.warning(
                "outbox full (%d bytes budget, policy %s): dropped %d message(s), %d in total",
                self.max_bytes,
                self.when_full,
                self._dropped_since_log,
                self.dropped,
            )
            self._last_log = now
            self._dropped_since_log = 0

    # -- reading and acknowledging -------------------------------------------------------------

    def fetch_after(self, after_id: int, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` messages with an id above ``after_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain, created FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [OutboxRow(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5]) for r in rows]

    def ack(self, ids: Iterable[int]) -> None:
        """Delete acknowledged messages (unknown ids, e.g. already dropped, are ignored)."""
        ids = list(ids)
        if ids:
            with self._lock:
                self._delete_locked(ids)

    def _delete_locked(self, ids: list[int]) -> None:
        for i in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            # IMMEDIATE: take the write lock before reading, so the read snapshot cannot go
            # stale under the sequencer's writes to the same file (SQLITE_BUSY_SNAPSHOT).
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._one(f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox WHERE id IN ({marks})", chunk)
                self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth -= int(row[0])
            self._bytes -= int(row[1])
        if self._depth <= 0:
            self._depth, self._bytes, self._oldest = 0, 0, None
        else:
            self._oldest = self._one("SELECT created FROM outbox ORDER BY id LIMIT 1")[0]

    # -- state ---------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Messages waiting for an acknowledgement."""
        return self._depth

    def stats(self) -> OutboxStats:
        """Depth, bytes, oldest message time and drops so far."""
        with self._lock:
            return OutboxStats(self._depth, self._bytes, self.max_bytes, self._oldest, self.dropped)

    def close(self) -> None:
        """Checkpoint the WAL and close the file."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error:
                pass
            self._db.close()
