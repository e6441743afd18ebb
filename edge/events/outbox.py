"""Durable outbox: every MQTT message is on disk before it is published and leaves the disk only
after the broker acknowledged it.

SQLite in WAL mode, one row per message, ordered by an autoincrement id (= publish order).
``synchronous=NORMAL`` by default: a killed process loses nothing (WAL is written before commit
returns); a power cut may lose the last few commits but never corrupts the file. ``FULL`` trades
an fsync per event for power-cut safety (slow on SD cards).

Disk budget: ``max_bytes`` bounds the files on disk, ``<db>`` + ``<db>-wal`` + ``<db>-shm``,
within a slack of :data:`DISK_SLACK` bytes (the pages one insert may add before the check below
trims the table again, and one transaction's WAL frames). Two checks keep it:

- the sum of stored topic + payload bytes plus a per-row overhead stays under ``max_bytes``
  (cheap, checked before each insert);
- the pages the database file really uses (SQLite's b-tree fill, the sequence table) stay under
  ``max_bytes`` minus the fixed ``-shm`` index (32 KiB) and the WAL allowance (``max_bytes / 16``,
  8 to 1000 pages: the WAL is checkpointed at half of it and truncated back to it). Checked
  after each insert; the file never shrinks, but pages freed by deletes are reused, so its size
  stops growing at that bound.

Measured (tests/test_events_outbox.py): a 64 KiB budget peaks at ~66 KiB on disk and holds
~35 events (SQLite's fixed costs take the rest); 1 MiB peaks under 1 MiB. A file made bigger by
an older version keeps its size (SQLite files only shrink by VACUUM) but stops growing. Small
budgets checkpoint often (an fsync every few events): fine at event rates, not at frame rates.

When a new message does not fit, ``drop_oldest`` (default: fresh events matter more than a
backlog nobody has read for days) deletes the oldest rows, ``drop_newest`` refuses the new one.
Either way the drop is counted, logged (rate-limited) and never raises.
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
WAL_FRACTION = 16  # the WAL is checkpointed (and truncated) at max_bytes / WAL_FRACTION
SHM_BYTES = 32 * 1024  # SQLite's WAL index file: 32 KiB for any WAL under ~4000 pages
SMALL_PAGE_BUDGET = 16 * 1024 * 1024  # below this budget a new file uses 1 KiB pages (finer bound)
DISK_SLACK = 16 * 1024  # bytes the files may exceed max_bytes by (see the module docstring)
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
    disk_bytes: int = 0  # what the files occupy: db + -wal + -shm (the budget bounds this)

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
        if max_bytes < SMALL_PAGE_BUDGET:  # only takes effect on a new file (before WAL mode)
            self._db.execute("PRAGMA page_size=1024").fetchall()
        self._db.execute("PRAGMA journal_mode=WAL").fetchall()
        self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}").fetchall()
        self._page = int(self._one("PRAGMA page_size")[0])
        wal_pages = max(8, min(1000, max_bytes // WAL_FRACTION // self._page))  # >= 8: a checkpoint per commit is slow
        # SQLite's default (checkpoint at 1000 pages = 4 MB, WAL kept at that size) would dwarf
        # a small budget. Checkpoint at half the allowance, so the transaction that crosses the
        # threshold still fits in it, and truncate the WAL back to the allowance afterwards.
        self._db.execute(f"PRAGMA wal_autocheckpoint={max(1, wal_pages // 2)}").fetchall()
        self._db.execute(f"PRAGMA journal_size_limit={wal_pages * self._page}").fetchall()
        # Pages the database file may hold: the budget minus the -shm index and the WAL allowance.
        self._max_pages = max(8, (max_bytes - SHM_BYTES - wal_pages * self._page) // self._page)
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
            row_id = int(cur.lastrowid or 0)
            self._depth += 1
            self._bytes += size
            if self._oldest is None:
                self._oldest = now
            if not self._fit_pages_locked(row_id, now):
                return None
            return row_id

    def _used_pages(self) -> int:
        """Pages of the database file holding data (free pages are reused before it grows)."""
        return int(self._one("PRAGMA page_count")[0]) - int(self._one("PRAGMA freelist_count")[0])

    def _fit_pages_locked(self, new_id: int, now: float) -> bool:
        """After an insert: keep the file's used pages within the disk budget; False if the new
        row itself had to go (``drop_newest``)."""
        excess = self._used_pages() - self._max_pages
        if excess <= 0:
            return True
        if self.when_full == "drop_newest" or self._depth <= 1:
            self._delete_locked([new_id])
            self._count_drop(1, now)
            return False
        while excess > 0:
            # SQLite stores rows less densely than the byte accounting assumes: free at least
            # the excess pages' worth of accounted bytes, then look again.
            if not self._drop_oldest_locked(excess * self._page, now, before=new_id):
                break
            excess = self._used_pages() - self._max_pages
        return True

    def _drop_oldest_locked(self, need: int, now: float, before: int = 2**63 - 1) -> int:
        """Delete the oldest rows (ids below ``before``) until ``need`` accounted bytes are freed."""
        freed, ids, after = 0, [], 0
        while freed < need:
            rows = self._db.execute(
                "SELECT id, size FROM outbox WHERE id > ? AND id < ? ORDER BY id LIMIT 256", (after, before)
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
        return len(ids)

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
        """Depth, bytes, oldest message time, drops so far and the size of the files."""
        with self._lock:
            return OutboxStats(self._depth, self._bytes, self.max_bytes, self._oldest, self.dropped, self.disk_bytes())

    def disk_bytes(self) -> int:
        """Bytes the outbox occupies on disk: the database, its WAL and its WAL index."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                total += Path(f"{self.path}{suffix}").stat().st_size
            except OSError:  # no WAL yet, or already checkpointed away
                pass
        return total

    def close(self) -> None:
        """Checkpoint the WAL and close the file."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error:
                pass
            self._db.close()
