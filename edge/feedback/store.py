"""One SQLite file beside the outbox holding, each bounded:

- ``recent_events``: compact JSON of the last N events (what feedback commands refer to);
- ``snapshots``: the JPEG crop of the last M events that had one;
- ``feedback``: every correction, with the event and its crop copied in (they outlive the
  bounded tables above, so an export months later still has them).

Writes happen on camera threads (events, snapshots) and the command worker (feedback); one
connection behind a lock keeps that simple, WAL keeps readers (``edge feedback export``) apart.

Recording events and snapshots is a convenience for later look-ups: when the file cannot be
written (disk full, I/O error, read-only) they are skipped and counted (``write_errors``), with
one log line at most once a minute - never a traceback per event. Corrections (``add_feedback``)
still raise, so the operator's command is answered with the error.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.config import AppConfig
from edge.events.schema import Event
from edge.storage_errors import LogThrottle, describe_write_error

log = logging.getLogger("edge.feedback")

_PRUNE_EVERY = 256  # inserts between trims of a bounded table


def default_db_path(config: AppConfig) -> Path:
    """``commands.db`` or ``<outbox name>.feedback.sqlite3`` beside the outbox."""
    if config.commands.db is not None:
        return config.commands.db
    ob = config.outbox.path
    return ob.with_name(f"{ob.stem}.feedback.sqlite3")


@dataclass(frozen=True)
class FeedbackRow:
    """One correction."""

    command: str
    ts: float
    event: str
    camera: str | None
    field: str
    old: str | None
    new: str
    note: str | None
    event_json: str | None
    jpeg: bytes | None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS recent_events (
    id TEXT PRIMARY KEY, camera TEXT, track INTEGER, start TEXT, json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS recent_events_track ON recent_events (camera, track, start);
CREATE TABLE IF NOT EXISTS snapshots (event_id TEXT PRIMARY KEY, jpeg BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (
    n INTEGER PRIMARY KEY AUTOINCREMENT, command TEXT NOT NULL, ts REAL NOT NULL, event TEXT NOT NULL,
    camera TEXT, field TEXT NOT NULL, old TEXT, new TEXT NOT NULL, note TEXT, event_json TEXT, jpeg BLOB);
"""


class FeedbackStore:
    """The feedback database (thread-safe)."""

    def __init__(self, path: str | Path, recent_events: int = 5000, snapshots: int = 2000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.recent_max, self.snapshots_max = recent_events, snapshots
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL").fetchall()
        self._db.execute("PRAGMA synchronous=NORMAL").fetchall()
        self._db.executescript(_SCHEMA)
        self._inserts = {"recent_events": 0, "snapshots": 0}
        self.write_errors = 0  # events and snapshots not recorded because the file cannot be written
        self._error_log = LogThrottle(60.0)

    def _skip(self, what: str, err: sqlite3.Error) -> None:
        """Count a record that could not be written; say so once a minute (lock held)."""
        self.write_errors += 1
        if self._error_log.due():
            log.warning(
                "feedback store %s cannot be written (%s): %s not recorded, %d skipped so far "
                "(feedback commands cannot refer to them)",
                self.path,
                describe_write_error(err),
                what,
                self.write_errors,
            )

    def _trim(self, table: str, keep: int) -> None:
        # rowids grow with each insert, so the newest ``keep`` rows are the highest ones
        self._inserts[table] += 1
        if self._inserts[table] % _PRUNE_EVERY == 0:
            self._db.execute(f"DELETE FROM {table} WHERE rowid <= (SELECT MAX(rowid) FROM {table}) - ?", (keep,))

    # -- recent events -------------------------------------------------------------------------

    def record_event(self, event: Event) -> None:
        """Remember ``event`` (compact JSON) so a later feedback command can refer to it; skipped
        (counted, logged once a minute) when the file cannot be written."""
        row = (event.id, event.camera, event.track, event.start, event.to_json())
        with self._lock:
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO recent_events (id, camera, track, start, json) VALUES (?, ?, ?, ?, ?)",
                    row,
                )
                self._trim("recent_events", self.recent_max)
            except sqlite3.OperationalError as err:  # disk full, I/O error, read-only
                self._skip(f"event {event.id}", err)

    def event(self, event_id: str) -> dict[str, Any] | None:
        """A remembered event as a dict, or None if unknown or already forgotten."""
        with self._lock:
            row = self._db.execute("SELECT json FROM recent_events WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    # -- snapshots -----------------------------------------------------------------------------

    def put_snapshot(self, event_id: str, jpeg: bytes) -> None:
        """Keep the crop of event ``event_id``; skipped like :meth:`record_event` when the file
        cannot be written."""
        if self.snapshots_max <= 0:
            return
        with self._lock:
            try:
                self._db.execute("INSERT OR REPLACE INTO snapshots (event_id, jpeg) VALUES (?, ?)", (event_id, jpeg))
                self._trim("snapshots", self.snapshots_max)
            except sqlite3.OperationalError as err:
                self._skip(f"snapshot of {event_id}", err)

    def snapshot_for(self, event_id: str) -> bytes | None:
        """The crop of ``event_id``, else the newest crop of the same track (crops are taken at a
        track's start and plate reads, feedback may name any of its events)."""
        with self._lock:
            row = self._db.execute("SELECT jpeg FROM snapshots WHERE event_id = ?", (event_id,)).fetchone()
            if row is None:
                row = self._db.execute(
                    "SELECT s.jpeg FROM recent_events e JOIN recent_events o"
                    " ON o.camera = e.camera AND o.track = e.track AND o.start = e.start"
                    " JOIN snapshots s ON s.event_id = o.id WHERE e.id = ? AND e.track IS NOT NULL"
                    " ORDER BY s.rowid DESC LIMIT 1",
                    (event_id,),
                ).fetchone()
        return None if row is None else bytes(row[0])

    # -- feedback ------------------------------------------------------------------------------

    def add_feedback(self, row: FeedbackRow) -> None:
        """Store one correction."""
        with self._lock:
            self._db.execute(
                "INSERT INTO feedback (command, ts, event, camera, field, old, new, note, event_json, jpeg)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.command,
                    row.ts,
                    row.event,
                    row.camera,
                    row.field,
                    row.old,
                    row.new,
                    row.note,
                    row.event_json,
                    row.jpeg,
                ),
            )

    def feedback(self) -> list[FeedbackRow]:
        """Every correction, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT command, ts, event, camera, field, old, new, note, event_json, jpeg FROM feedback ORDER BY n"
            ).fetchall()
        return [
            FeedbackRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], None if r[9] is None else bytes(r[9]))
            for r in rows
        ]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


class SnapshotStore:
    """What the camera workers see: ``put(event_id, jpeg)`` for each snapshot they make."""

    def __init__(self, store: FeedbackStore) -> None:
        self.store = store

    def put(self, event_id: str, jpeg: bytes) -> None:
        """Keep the crop of ``event_id`` (bounded; the oldest go first)."""
        self.store.put_snapshot(event_id, jpeg)

    def get(self, event_id: str) -> bytes | None:
        """The crop of ``event_id`` or of its track."""
        return self.store.snapshot_for(event_id)
