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
Either way the drop is counted (reason ``budget``), logged (rate-limited) and never raises.

When the file cannot be written at all (disk full, I/O error, read-only), :meth:`Outbox.put`
keeps the message in memory instead (:class:`~edge.events.memqueue.MemoryQueue`, at most
``memory_max_bytes``; the oldest make room for new ones, each counted as dropped with reason
``unwritable``). Later messages queue behind it, so order is kept; the publisher sends and
acknowledges rows in memory like stored ones. A background thread retries every
``retry_interval`` seconds and, once a write succeeds, moves the rows to disk under the ids
they already have (no duplicates). Meanwhile :attr:`OutboxStats.write_error` says why
(``/healthz`` turns red) and one line is logged at the start, once a minute while it lasts
and at the end - never a traceback per event. What is still in memory when the outbox is
closed is lost, and counted.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edge.events.memqueue import MemoryQueue
from edge.storage_errors import LogThrottle, describe_write_error

log = logging.getLogger("edge.events.outbox")

ROW_OVERHEAD = 64  # rough per-row cost of the SQLite record, rowid and page slack
WAL_FRACTION = 16  # the WAL is checkpointed (and truncated) at max_bytes / WAL_FRACTION
SHM_BYTES = 32 * 1024  # SQLite's WAL index file: 32 KiB for any WAL under ~4000 pages
SMALL_PAGE_BUDGET = 16 * 1024 * 1024  # below this budget a new file uses 1 KiB pages (finer bound)
DISK_SLACK = 16 * 1024  # bytes the files may exceed max_bytes by (see the module docstring)
_LOG_EVERY = 60.0  # seconds between "outbox full" / "cannot be written" warnings
MEMORY_MAX_BYTES = 4 * 1024 * 1024  # default bound of the in-memory queue (outbox.memory_max_bytes)
_FLUSH_CHUNK = 200  # rows moved from memory to disk per lock hold (puts wait at most that long)


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
    dropped: int  # every reason: budget + unwritable
    disk_bytes: int = 0  # what the files occupy: db + -wal + -shm (the budget bounds this)
    memory_depth: int = 0  # of ``depth``: messages held in memory because the file cannot be written
    memory_bytes: int = 0
    dropped_unwritable: int = 0  # of ``dropped``: evicted from memory (or lost at close) while unwritable
    write_error: str | None = None  # why the file cannot be written; None while it can
    unwritable_since: float | None = None  # epoch seconds of the first failed write of this outage

    @property
    def dropped_budget(self) -> int:
        """Messages dropped because the disk budget was full (``when_full``)."""
        return self.dropped - self.dropped_unwritable

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
        *,
        memory_max_bytes: int = MEMORY_MAX_BYTES,
        retry_interval: float = 1.0,
    ) -> None:
        """``memory_max_bytes`` bounds the messages kept in memory while the file cannot be
        written; ``retry_interval`` is the time in seconds between attempts to write them."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.when_full = when_full
        self.retry_interval = retry_interval
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
        self._recount_locked()
        # Ids are given here, not by SQLite, so a message kept in memory has its final id at once.
        seq = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchall()
        self._last_id = max(int(self._one("SELECT COALESCE(MAX(id), 0) FROM outbox")[0]), int(seq[0][0]) if seq else 0)
        self.dropped = 0  # every reason
        self.dropped_unwritable = 0
        self._dropped_since_log = 0
        self._last_log = 0.0
        # -- while the file cannot be written (see the module docstring) --
        self._memory: MemoryQueue[OutboxRow] = MemoryQueue(memory_max_bytes)
        self._pending_acks: set[int] = set()  # acknowledged rows whose delete failed
        self._write_error: str | None = None
        self._unwritable_since: float | None = None
        self._outage_moved = 0  # rows moved from memory to disk during this outage
        self._outage_dropped = 0  # dropped_unwritable when this outage began
        self._outage_log = LogThrottle(_LOG_EVERY)  # start of an outage
        self._outage_logged = False  # this outage's start was logged (so its end will be)
        self._still_log = LogThrottle(_LOG_EVERY)  # "still cannot be written" while it lasts
        self._retry_thread: threading.Thread | None = None
        self._closing = threading.Event()
        if self._depth:
            log.info(
                "outbox %s holds %d message(s) from a previous run; sending them first",
                self.path,
                self._depth,
            )

    def _one(self, sql: str, params: tuple[object, ...] | list[int] = ()) -> tuple[Any, ...]:
        """One row, with the statement closed at once: an open SELECT would keep this
        connection's transaction (and, after a write, SQLite's write lock) open."""
        cur = self._db.execute(sql, params)
        try:
            return tuple(cur.fetchone())
        finally:
            cur.close()

    def _recount_locked(self) -> None:
        row = self._one("SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created) FROM outbox")
        self._depth, self._bytes, self._oldest = int(row[0]), int(row[1]), row[2]

    # -- writing -------------------------------------------------------------------------------

    def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Store a message; returns its id, or None if it was dropped (``drop_newest`` when full).

        If the file cannot be written the message is kept in memory (same id); never raises for
        a full or failing disk."""
        size = len(payload) + len(topic.encode("utf-8")) + ROW_OVERHEAD
        with self._lock:
            if self._closing.is_set():
                raise RuntimeError(f"outbox {self.path} is closed")
            self._last_id += 1
            row = OutboxRow(self._last_id, topic, payload, qos, retain, time.time())
            if not self._memory:  # else it queues behind what waits in memory (order)
                try:
                    stored = self._store_locked(row, size)
                except sqlite3.Error as err:
                    self._cannot_write_locked(err)
                else:
                    self._writable_again_locked()
                    return row.id if stored else None
            self._keep_in_memory_locked(row, size)
            return row.id

    def _store_locked(self, row: OutboxRow, size: int) -> bool:
        """Insert ``row`` within the disk budget; False if the budget policy refused it. Raises
        :class:`sqlite3.Error` if the file cannot be written (then nothing of ``row`` is stored)."""
        now = time.time()
        if self._bytes + size > self.max_bytes:
            if self.when_full == "drop_newest" or size > self.max_bytes:
                self._count_drop(1, now)
                return False
            self._drop_oldest_locked(self._bytes + size - self.max_bytes, now)
        try:
            self._db.execute(
                "INSERT INTO outbox (id, topic, payload, qos, retain, created, size) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row.id, row.topic, row.payload, row.qos, int(row.retain), row.created, size),
            )
        except sqlite3.IntegrityError:  # stored by an attempt that reported a failure: no duplicate
            self._recount_locked()
            return True
        self._depth += 1
        self._bytes += size
        if self._oldest is None:
            self._oldest = row.created
        try:
            return self._fit_pages_locked(row.id, now)
        except sqlite3.Error:  # the row is stored; the next insert trims again (or finds the disk full)
            return True

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
        """Count ``n`` messages dropped by the disk budget (reason ``budget``)."""
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

    # -- when the file cannot be written -------------------------------------------------------

    def _keep_in_memory_locked(self, row: OutboxRow, size: int) -> None:
        evicted = self._memory.push(row, size)
        self.dropped += evicted
        self.dropped_unwritable += evicted
        self._start_retry_locked()

    def _cannot_write_locked(self, err: sqlite3.Error) -> None:
        """Enter (or stay in) the unwritable state: one warning when it starts, no traceback."""
        reason = describe_write_error(err)
        if self._write_error is None:
            self._unwritable_since = time.time()
            self._outage_moved, self._outage_dropped = 0, self.dropped_unwritable
            # A nearly full disk flaps (SQLite reuses WAL space, acks free pages): at most one
            # start line a minute, and an end line only for an outage whose start was logged.
            self._outage_logged = self._outage_log.due()
            if self._outage_logged:
                log.warning(
                    "outbox %s cannot be written: %s; keeping the newest messages in memory (up to %d bytes) "
                    "and retrying every %g s (%d dropped in total)",
                    self.path,
                    reason,
                    self._memory.max_bytes,
                    self.retry_interval,
                    self.dropped,
                )
                self._still_log.restart()
        self._write_error = reason
        self._start_retry_locked()

    def _writable_again_locked(self) -> None:
        if self._write_error is None:
            return
        if self._outage_logged:
            log.warning(
                "outbox %s can be written again after %.0f s: %d message(s) moved from memory to disk, "
                "%d dropped meanwhile (over outbox.memory_max_bytes)",
                self.path,
                time.time() - (self._unwritable_since or time.time()),
                self._outage_moved,
                self.dropped_unwritable - self._outage_dropped,
            )
        self._write_error, self._unwritable_since = None, None

    def _start_retry_locked(self) -> None:
        if self._retry_thread is None and not self._closing.is_set():
            self._retry_thread = threading.Thread(target=self._retry_loop, name="edge-outbox-retry", daemon=True)
            self._retry_thread.start()

    def _retry_loop(self) -> None:
        while not self._closing.wait(self.retry_interval):
            try:
                moved = self._flush_memory()
                with self._lock:
                    if self._memory:  # new messages came in after the last chunk: next round
                        continue
                    if self._pending_acks:
                        self._delete_locked(sorted(self._pending_acks))
                        self._pending_acks.clear()
                    if not moved and self._write_error is not None:
                        self._probe_locked()
                    self._writable_again_locked()
                    self._retry_thread = None
                    return
            except sqlite3.Error as err:
                with self._lock:
                    self._cannot_write_locked(err)
                    if self._still_log.due():
                        log.warning(
                            "outbox %s still cannot be written (%s) after %.0f s: %d message(s) in memory, "
                            "%d dropped since it began",
                            self.path,
                            self._write_error,
                            time.time() - (self._unwritable_since or time.time()),
                            len(self._memory),
                            self.dropped_unwritable - self._outage_dropped,
                        )
        with self._lock:
            self._retry_thread = None

    def _flush_memory(self) -> int:
        """Move the rows kept in memory to disk, oldest first, a chunk per lock hold; returns
        how many were moved. Raises :class:`sqlite3.Error` where it had to stop."""
        moved = 0
        while True:
            with self._lock:
                chunk = self._memory.oldest(_FLUSH_CHUNK)
                if not chunk:
                    return moved
                if self._bytes + sum(size for _, size in chunk) <= self.max_bytes and self._insert_chunk_locked(chunk):
                    done = len(chunk)
                else:  # the budget must drop rows on the way (or a row is there already): one by one
                    done = 0
                    for row, size in chunk:
                        self._store_locked(row, size)  # False (budget refused it) is counted there
                        self._memory.discard([row.id])
                        done += 1
                moved += done
                self._outage_moved += done

    def _insert_chunk_locked(self, chunk: list[tuple[OutboxRow, int]]) -> bool:
        """Insert rows from memory in one transaction (one WAL append, not one per row: the disk
        is short of space); False if one of them is stored already (nothing is inserted then)."""
        try:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO outbox (id, topic, payload, qos, retain, created, size) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(r.id, r.topic, r.payload, r.qos, int(r.retain), r.created, size) for r, size in chunk],
                )
        except sqlite3.IntegrityError:
            return False
        self._memory.discard([r.id for r, _ in chunk])
        self._depth += len(chunk)
        self._bytes += sum(size for _, size in chunk)
        if self._oldest is None:
            self._oldest = chunk[0][0].created
        try:
            self._fit_pages_locked(chunk[-1][0].id, time.time())
        except sqlite3.Error:  # the rows are stored; the next insert trims again
            pass
        return True

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` .. ``COMMIT``, rolled back on any error. IMMEDIATE takes the write
        lock before reading, so the read snapshot cannot go stale under the sequencer's writes to
        the same file (SQLITE_BUSY_SNAPSHOT)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite may have rolled back already (disk full)
                self._db.execute("ROLLBACK")
            raise

    def _probe_locked(self) -> None:
        """A real write to the file (the header's user_version, unchanged): raises if it still fails."""
        version = int(self._one("PRAGMA user_version")[0])
        self._db.execute(f"PRAGMA user_version = {version}").fetchall()

    # -- reading and acknowledging -------------------------------------------------------------

    def fetch_after(self, after_id: int, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` messages with an id above ``after_id``, oldest first (those on disk,
        then those kept in memory: every id in memory is above every id on disk)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain, created FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
            out = [OutboxRow(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5]) for r in rows]
            if len(out) < limit and self._memory:
                out += self._memory.after(after_id, limit - len(out))
        return out

    def ack(self, ids: Iterable[int]) -> None:
        """Delete acknowledged messages (unknown ids, e.g. already dropped, are ignored). If the
        file cannot be written, the deletes are retried later (a restart before that sends
        those messages again: at least once)."""
        ids = list(ids)
        if ids:
            with self._lock:
                on_disk = self._memory.discard(ids)
                if not on_disk:
                    return
                try:
                    self._delete_locked(on_disk)
                except sqlite3.Error as err:
                    self._pending_acks.update(on_disk)
                    self._cannot_write_locked(err)

    def _delete_locked(self, ids: list[int]) -> None:
        for i in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            with self._transaction():
                row = self._one(f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox WHERE id IN ({marks})", chunk)
                self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)
            self._depth -= int(row[0])
            self._bytes -= int(row[1])
        if self._depth <= 0:
            self._depth, self._bytes, self._oldest = 0, 0, None
        else:
            self._oldest = self._one("SELECT created FROM outbox ORDER BY id LIMIT 1")[0]

    # -- state ---------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Messages waiting for an acknowledgement (on disk and in memory)."""
        return self._depth + len(self._memory)

    @property
    def write_error(self) -> str | None:
        """Why the file cannot be written, or None while it can."""
        return self._write_error

    def stats(self) -> OutboxStats:
        """Depth, bytes, oldest message time, drops so far, the size of the files and what is
        kept in memory while the file cannot be written."""
        with self._lock:
            oldest = self._oldest if self._oldest is not None else self._memory.oldest_created()
            return OutboxStats(
                self._depth + len(self._memory),
                self._bytes,
                self.max_bytes,
                oldest,
                self.dropped,
                self.disk_bytes(),
                memory_depth=len(self._memory),
                memory_bytes=self._memory.bytes,
                dropped_unwritable=self.dropped_unwritable,
                write_error=self._write_error,
                unwritable_since=self._unwritable_since,
            )

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
        """Write what is kept in memory if the file takes it (what it does not take is lost and
        counted), checkpoint the WAL and close the file."""
        self._closing.set()
        retry = self._retry_thread
        if retry is not None:
            retry.join(timeout=10)
        try:
            self._flush_memory()
        except sqlite3.Error as err:
            with self._lock:
                self._write_error = describe_write_error(err)
        with self._lock:
            lost = len(self._memory)
            if lost:
                self._memory.discard([row.id for row, _ in self._memory.oldest(lost)])
                self.dropped += lost
                self.dropped_unwritable += lost
                log.error(
                    "outbox %s closed while it cannot be written (%s): %d message(s) kept in memory are lost",
                    self.path,
                    self._write_error,
                    lost,
                )
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error:
                pass
            self._db.close()
