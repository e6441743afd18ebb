"""The data-access layer: one schema, SQLite or PostgreSQL, through SQLAlchemy Core.

SQLAlchemy Core (not the ORM) because it gives one query language over both databases, a
portable ``INSERT ... ON CONFLICT DO NOTHING / DO UPDATE`` (both dialects have it) and
connection pooling, and it is the most widely used, well-kept Python database toolkit.

Deduplication is the database's job: ``events.id`` is the primary key and every insert is
``ON CONFLICT DO NOTHING``, so redeliveries and several workers store an event exactly once.
Visits and anomalies are upserted by id, keeping the row with the latest ``updated`` time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from edge.fleet.counts import write_counts
from edge.fleet.migrations import migrate
from edge.fleet.migrations.m001_initial import anomalies, commands, devices, events, snapshots, visits
from edge.fleet.migrations.m002_dead_letters import dead_letters

DEAD_LETTERS_KEEP = 100_000  # newest dead letters kept (a flooding device cannot fill the disk)
_PRUNE_EVERY = 1_000  # dead letters written between two prunes


def epoch(iso: str | None) -> float | None:
    """``2026-11-22T08:00:07.070Z`` -> epoch seconds (None stays None; bad text -> None)."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def make_engine(url: str) -> sa.Engine:
    """An engine for a SQLAlchemy URL; SQLite gets WAL and a busy timeout (several threads write)."""
    if url.startswith("sqlite"):
        eng = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return eng
    return sa.create_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)


@dataclass
class Batch:
    """What one ingest transaction writes."""

    events: list[dict[str, Any]] = field(default_factory=list)  # decoded event JSON
    derived: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (origin, visit/anomaly event)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)  # {device, status?, stats?}
    replies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (topic device, reply)
    dead: list[dict[str, Any]] = field(default_factory=list)  # dead_letters rows

    def extend(self, other: Batch) -> None:
        """Add ``other``'s rows (several messages' writes in one transaction)."""
        self.events += other.events
        self.derived += other.derived
        self.snapshots += other.snapshots
        self.statuses += other.statuses
        self.replies += other.replies
        self.dead += other.dead


class FleetStore:
    """Every read and write of the console and the ingest workers."""

    def __init__(self, url: str, dead_letters_keep: int = DEAD_LETTERS_KEEP) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self.version = migrate(self.engine)
        self._touched: dict[str, float] = {}
        self._visit_count_lock = threading.Lock()  # summary(): one visit count shared by every stream
        self._visit_count_cache: tuple[Any, int] = (None, 0)
        self.dead_letters_keep = dead_letters_keep
        self._dead_since_prune = _PRUNE_EVERY  # prune on the first dead letter (the limit may have shrunk)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    # --- writes -----------------------------------------------------------------------------

    def ping(self) -> bool:
        """True when the database answers (tells a refused row from a database that is down)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:  # any driver error means "not now"
            return False

    def write(self, batch: Batch) -> list[str]:
        """Store a batch in one transaction; returns the ids of events that were new."""
        now = time.time()
        new: list[str] = []
        with self.engine.begin() as conn:
            if batch.events:
                # one lock order for every worker (sorted ids): concurrent batches never deadlock
                rows = sorted((event_row(e, now) for e in batch.events), key=lambda r: r["id"])
                stmt = self._insert(events).on_conflict_do_nothing(index_elements=["id"]).returning(events.c.id)
                new = [r[0] for r in conn.execute(stmt, rows)] if len(rows) == 1 else self._many(conn, stmt, rows)
                fresh = set(new)
                for e in batch.events:
                    if e["id"] in fresh and e.get("type") in ("visit", "anomaly"):
                        self._derived(conn, e["device"], e)
                    elif e["id"] in fresh and e.get("type") == "count":
                        write_counts(conn, self._insert, e)  # time series rows (edge.fleet.counts)
            for origin, e in batch.derived:
                self._derived(conn, origin, e)
            if batch.snapshots:
                batch.snapshots.sort(key=lambda r: r["event_id"])
                conn.execute(
                    self._insert(snapshots).on_conflict_do_nothing(index_elements=["event_id"]), batch.snapshots
                )
            for st in sorted(batch.statuses, key=lambda r: r["device"]):
                self._status(conn, now, **st)
            for device, reply in batch.replies:
                self._reply(conn, device, reply)
            if batch.dead:
                self._dead_letters(conn, batch.dead)
        if batch.events:
            self._touch({e["device"] for e in batch.events}, now)
        return new

    def _dead_letters(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        conn.execute(dead_letters.insert(), rows)
        self._dead_since_prune += len(rows)
        if self._dead_since_prune >= _PRUNE_EVERY:  # keep the newest dead_letters_keep rows
            self._dead_since_prune = 0
            top = sa.select(sa.func.max(dead_letters.c.id)).scalar_subquery()
            conn.execute(dead_letters.delete().where(dead_letters.c.id <= top - self.dead_letters_keep))

    def _many(self, conn: sa.Connection, stmt: Any, rows: list[dict[str, Any]]) -> list[str]:
        # executemany with RETURNING ("insertmanyvalues"): one round trip per ~1000 rows on both dialects
        res = conn.execute(stmt, rows)
        return [r[0] for r in res]

    def _touch(self, seen: set[str], now: float) -> None:
        """``devices.last_seen``: in its own short transaction, at most every 2 s per device and
        worker, in sorted order (hot rows shared by all workers: never held across a batch)."""
        due = sorted(d for d in seen if now - self._touched.get(d, 0.0) >= 2.0)
        if not due:
            return
        try:
            with self.engine.begin() as conn:
                for dev in due:
                    ins = self._insert(devices).values(device=dev, last_seen=now)
                    conn.execute(ins.on_conflict_do_update(index_elements=["device"], set_={"last_seen": now}))
        except sa.exc.SQLAlchemyError:  # the events are committed; last_seen catches up with the next batch
            return
        self._touched.update(dict.fromkeys(due, now))

    def _derived(self, conn: sa.Connection, origin: str, e: dict[str, Any]) -> None:
        """Upsert the visit or anomaly an event describes (the newest ``updated`` wins)."""
        found = derived_row(origin, e)
        if found is None:
            return
        table, row = found
        ins = self._insert(table).values(**row)
        upd = {k: ins.excluded[k] for k in row if k not in ("id", "raised", "evidence")}
        if table is visits:
            upd["evidence"] = sa.func.coalesce(table.c.evidence, ins.excluded.evidence)
        # newest wins, but an operator's ack/resolve (device clock "now") beats an update stamped with a
        # later frame time, and nothing reopens a resolved anomaly or a closed visit
        if table is anomalies:
            final = sa.or_(
                ins.excluded.state == "resolved", sa.and_(ins.excluded.state == "acked", table.c.state != "resolved")
            )
            guard = sa.and_(table.c.state != "resolved", sa.or_(table.c.updated <= ins.excluded.updated, final))
        else:
            guard = sa.and_(
                table.c.status == "open", sa.or_(table.c.updated <= ins.excluded.updated, ins.excluded.status != "open")
            )
        # a row belongs to the device (or fleet engine) that made it: another origin reusing its id
        # (a hostile or broken device) changes nothing; its event is still stored as sent
        guard = sa.and_(table.c.origin == ins.excluded.origin, guard)
        conn.execute(ins.on_conflict_do_update(index_elements=["id"], set_=upd, where=guard))

    def device_status(self, device: str, status: str | None = None, stats: dict[str, Any] | None = None) -> None:
        """Record a device's retained status or its periodic stats."""
        with self.engine.begin() as conn:
            self._status(conn, time.time(), device, status, stats)

    def _status(
        self,
        conn: sa.Connection,
        now: float,
        device: str,
        status: str | None = None,
        stats: dict[str, Any] | None = None,
    ) -> None:
        vals: dict[str, Any] = {"device": device, "last_seen": now}
        if status is not None:
            vals.update(status=status, status_at=now)
        if stats is not None:
            vals.update(stats=json.dumps(stats, separators=(",", ":")), stats_at=now)
        ins = self._insert(devices).values(**vals)
        conn.execute(
            ins.on_conflict_do_update(index_elements=["device"], set_={k: v for k, v in vals.items() if k != "device"})
        )

    def add_command(self, cmd_id: str, device: str, body: dict[str, Any], user: str) -> None:
        """Remember a command sent to a device (the reply is filled in by :meth:`command_reply`)."""
        target = body.get("anomaly") or body.get("event")
        with self.engine.begin() as conn:
            conn.execute(
                commands.insert().values(
                    id=cmd_id, device=device, cmd=body["cmd"], target=target, user=user,
                    body=json.dumps(body, separators=(",", ":")), sent=time.time(),
                )
            )  # fmt: skip

    def command_reply(self, reply: dict[str, Any], device: str) -> bool:
        """Attach ``device``'s reply to the command it answers; False if it is not ours, or the
        command went to another device (a device cannot answer for another one)."""
        with self.engine.begin() as conn:
            return self._reply(conn, device, reply)

    def _reply(self, conn: sa.Connection, device: str, reply: dict[str, Any]) -> bool:
        cid = reply.get("id")
        if not isinstance(cid, str):
            return False
        res = conn.execute(
            commands.update()
            .where(commands.c.id == cid, commands.c.device == device)
            .values(ok=bool(reply.get("ok")), reply=json.dumps(reply, separators=(",", ":")), replied=time.time())
        )
        return bool(res.rowcount)

    # --- reads ------------------------------------------------------------------------------

    def _all(self, q: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def count_events(self, device: str | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(events)
        if device:
            q = q.where(events.c.device == device)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def event_ids(self) -> list[str]:
        return [r["id"] for r in self._all(sa.select(events.c.id))]

    def event(self, event_id: str) -> dict[str, Any] | None:
        rows = self._all(sa.select(events).where(events.c.id == event_id))
        return rows[0] if rows else None

    def visits(
        self,
        *,
        device: str | None = None,
        since: float | None = None,
        until: float | None = None,
        plate: str | None = None,
        vtype: str | None = None,
        origin: str | None = None,
        limit: int = 500,
        merge: bool = True,
    ) -> list[dict[str, Any]]:
        """Visits, newest entry first, filtered (plate: substring, case-insensitive).

        ``merge``: one row per visit (see :func:`visit_twin_better`); each row's ``also`` lists the
        origins of the rows it stands for. ``merge=False``: every stored row, each engine's own.
        """
        q = sa.select(*[c for c in visits.c if c.name != "body"])
        if merge:
            q = q.where(~visit_twin_better(visits))
        if device:
            q = q.where(sa.or_(visits.c.device == device, visits.c.exit_device == device))
        if since is not None:
            q = q.where(visits.c.time_in >= since)
        if until is not None:
            q = q.where(visits.c.time_in < until)
        if plate:
            q = q.where(sa.func.upper(visits.c.plate).contains(plate.upper(), autoescape=True))
        if vtype:
            q = q.where(visits.c.vtype == vtype)
        if origin:
            q = q.where(visits.c.origin == origin)
        fetch = self._with_twins if merge else self._all
        # newest entry first, visits without an entry time last: two queries, so that both databases
        # walk the time_in index backwards and stop at ``limit`` (PostgreSQL cannot for NULLS LAST)
        rows = fetch(q.where(visits.c.time_in.is_not(None)).order_by(visits.c.time_in.desc(), visits.c.id).limit(limit))
        if len(rows) < limit:
            rows += fetch(q.where(visits.c.time_in.is_(None)).order_by(visits.c.id).limit(limit - len(rows)))
        return rows

    def _with_twins(self, q: Any) -> list[dict[str, Any]]:
        """The rows of ``q`` with ``also``: the origins of the other rows of each one's visit
        (one query: the shown rows joined with their twins through the (device, time_in) index)."""
        shown = q.subquery("shown")
        twin = visits.alias("other")
        on = sa.and_(
            twin.c.device == shown.c.device, twin.c.time_in == shown.c.time_in,
            twin.c.evidence == shown.c.evidence, twin.c.id != shown.c.id,
        )  # fmt: skip
        joined = (
            sa.select(shown, twin.c.origin.label("_also"))
            .select_from(shown.outerjoin(twin, on))
            .order_by(shown.c.time_in.desc(), shown.c.id, twin.c.origin)
        )
        out: dict[str, dict[str, Any]] = {}
        for r in self._all(joined):
            also = r.pop("_also")
            row = out.setdefault(r["id"], {**r, "also": []})
            if also is not None and also not in row["also"]:
                row["also"].append(also)
        return list(out.values())

    def anomalies(
        self, *, open_only: bool = False, since: float | None = None, until: float | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Anomalies, newest first."""
        q = sa.select(*[c for c in anomalies.c if c.name != "body"])
        if open_only:
            q = q.where(anomalies.c.open.is_(True))
        if since is not None:
            q = q.where(anomalies.c.raised >= since)
        if until is not None:
            q = q.where(anomalies.c.raised < until)
        return self._all(q.order_by(anomalies.c.raised.desc(), anomalies.c.id).limit(limit))

    def anomaly(self, anomaly_id: str, device: str | None = None) -> dict[str, Any] | None:
        """One anomaly; with ``device``, only if it happened at that device."""
        q = sa.select(anomalies).where(anomalies.c.id == anomaly_id)
        rows = self._all(q if device is None else q.where(anomalies.c.device == device))
        return rows[0] if rows else None

    def visit(self, visit_id: str, device: str | None = None) -> dict[str, Any] | None:
        """One visit; with ``device``, only if it entered at that device."""
        q = sa.select(visits).where(visits.c.id == visit_id)
        rows = self._all(q if device is None else q.where(visits.c.device == device))
        return rows[0] if rows else None

    def devices(self) -> list[dict[str, Any]]:
        """Devices with their stats decoded (None where the stored text is not JSON)."""
        rows = self._all(sa.select(devices).order_by(devices.c.device))
        for r in rows:
            r["stats"] = loads_or_none(r["stats"])
        return rows

    def commands(self, limit: int = 50) -> list[dict[str, Any]]:
        """Latest commands with their replies."""
        rows = self._all(sa.select(commands).order_by(commands.c.sent.desc()).limit(limit))
        for r in rows:
            r["reply"] = loads_or_none(r["reply"])
        return rows

    def command(self, cmd_id: str) -> dict[str, Any] | None:
        rows = [r for r in self._all(sa.select(commands).where(commands.c.id == cmd_id))]
        if rows and rows[0]["reply"]:
            rows[0]["reply"] = loads_or_none(rows[0]["reply"])
        return rows[0] if rows else None

    def snapshot(self, event_id: str) -> bytes | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(snapshots.c.jpeg).where(snapshots.c.event_id == event_id)).first()
        return bytes(row[0]) if row else None

    def snapshot_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        if not ids:
            return set()
        return {r["event_id"] for r in self._all(sa.select(snapshots.c.event_id).where(snapshots.c.event_id.in_(ids)))}

    def visit_snapshots(self, rows: Sequence[dict[str, Any]]) -> dict[str, str]:
        """visit id -> the event id of a snapshot of its entry: the entry crossing's own, else the
        first snapshot of the entry track (devices send crops for track start and plate events)."""
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for v in rows:
                if (
                    v.get("evidence")
                    and conn.execute(
                        sa.select(snapshots.c.event_id).where(snapshots.c.event_id == v["evidence"])
                    ).first()
                ):
                    out[v["id"]] = v["evidence"]
                    continue
                body = conn.execute(sa.select(visits.c.body).where(visits.c.id == v["id"])).scalar()
                a = (json.loads(body) if body else {}).get("attrs") or {}
                cam, track = str(a.get("entry_camera") or "").split("/")[-1], a.get("entry_track")
                if track is None:
                    continue
                q = (
                    sa.select(events.c.id)
                    .join(snapshots, snapshots.c.event_id == events.c.id)
                    .where(events.c.device == v["device"], events.c.camera == cam, events.c.track == track)
                    .order_by(events.c.ts)
                    .limit(1)
                )
                found = conn.execute(q).scalar()
                if found:
                    out[v["id"]] = found
        return out

    def summary(self) -> dict[str, Any]:
        """Counts for the console header and the live-update stream (``visits``: one per visit)."""
        with self.engine.connect() as conn:
            n_events = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() or 0
            n_rows = conn.execute(sa.select(sa.func.count()).select_from(visits)).scalar() or 0
            n_open = (
                conn.execute(
                    sa.select(sa.func.count()).select_from(anomalies).where(anomalies.c.open.is_(True))
                ).scalar()
                or 0
            )
            last_v = conn.execute(sa.select(sa.func.max(visits.c.updated))).scalar() or 0
            last_a = conn.execute(sa.select(sa.func.max(anomalies.c.updated))).scalar() or 0
            last_c = conn.execute(sa.select(sa.func.max(commands.c.replied))).scalar() or 0
            last_d = conn.execute(sa.select(sa.func.max(devices.c.last_seen))).scalar() or 0
        return {
            "events": int(n_events), "visits": self._visit_count((n_rows, last_v)), "open_anomalies": int(n_open),
            "mark": f"{n_events}:{n_rows}:{n_open}:{last_v}:{last_a}:{last_c}:{int(last_d)}",
        }  # fmt: skip

    def _visit_count(self, stamp: tuple[Any, Any]) -> int:
        """Visits, one per visit as listed (:func:`visit_key`): a full count, so it is kept until
        ``stamp`` (row count, newest update) changes, and every console stream shares it."""
        with self._visit_count_lock:
            if self._visit_count_cache[0] != stamp:
                key = sa.select(visits.c.device, visits.c.time_in, sa.func.coalesce(visits.c.evidence, visits.c.id))
                with self.engine.connect() as conn:
                    n = conn.execute(sa.select(sa.func.count()).select_from(key.distinct().subquery())).scalar()
                self._visit_count_cache = (stamp, int(n or 0))
            return self._visit_count_cache[1]


def loads_or_none(text: str | None) -> Any:
    """Decoded JSON, or None for no text or text that is not JSON (stored by an older version)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def visit_key(v: dict[str, Any]) -> tuple[Any, Any, Any]:
    """What identifies a visit across engines: its entry device, entry time and entry crossing event."""
    return (v["device"], v["time_in"], v["evidence"])


def visit_twin_better(v: Any) -> Any:
    """SQL: another row of the same visit (:func:`visit_key`) is preferred to row ``v``.

    The device's engine and the fleet's both make a visit from one entry crossing (same event id
    and time). Preferred: a closed row (the fleet's, when the car left at another device; the
    device's own then ends ``unresolved``), then the device's own row (origin = entry device),
    then the smaller id, so exactly one row per visit remains.
    """
    o = visits.alias("twin")

    def rank(t: Any) -> Any:
        return sa.case((t.c.status == "closed", 2), else_=0) + sa.case((t.c.origin == t.c.device, 1), else_=0)

    return (
        sa.exists()
        .where(o.c.device == v.c.device, o.c.time_in == v.c.time_in, o.c.evidence == v.c.evidence)
        .where(o.c.id != v.c.id, sa.or_(rank(o) > rank(v), sa.and_(rank(o) == rank(v), o.c.id < v.c.id)))
    )


def device_of(camera: str | None, default: str) -> str:
    """``devA/gate`` -> ``devA`` (a fleet-engine camera); a plain camera belongs to ``default``."""
    if camera and "/" in camera:
        return camera.split("/", 1)[0]
    return default


def event_row(e: dict[str, Any], received: float) -> dict[str, Any]:
    """The ``events`` row of a decoded event."""
    a = e.get("attrs") or {}
    return {
        "id": e["id"], "device": e["device"], "camera": e["camera"], "type": e["type"], "phase": e.get("phase"),
        "ts": epoch(e.get("ts")) or received, "seq": e.get("seq"), "track": e.get("track"),
        "plate": a.get("plate") or a.get("plate_hash"), "vtype": a.get("type"), "received": received,
        "body": json.dumps(e, separators=(",", ":")),
    }  # fmt: skip


def derived_row(origin: str, e: dict[str, Any]) -> tuple[sa.Table, dict[str, Any]] | None:
    """The ``visits`` or ``anomalies`` row a visit/anomaly event describes (None: neither)."""
    a = e.get("attrs") or {}
    ts = epoch(e.get("ts")) or time.time()
    body = json.dumps(e, separators=(",", ":"))
    if e["type"] == "visit" and a.get("visit"):
        entry_cam = a.get("entry_camera") or e.get("camera")
        exit_cam = a.get("exit_camera")
        row = {
            "id": a["visit"], "origin": origin, "device": device_of(entry_cam, e["device"]),
            "exit_device": device_of(exit_cam, e["device"]) if exit_cam else None,
            "entry_camera": entry_cam, "exit_camera": exit_cam, "status": a.get("status") or "open",
            "plate": a.get("plate") or a.get("plate_hash"), "vtype": a.get("type"),
            "road_in": a.get("road_in"), "road_out": a.get("road_out"),
            "time_in": epoch(a.get("time_in")), "time_out": epoch(a.get("time_out")),
            "evidence": (a.get("evidence") or [e["id"]])[0], "event_id": e["id"], "updated": ts, "body": body,
        }  # fmt: skip
        return visits, row
    if e["type"] == "anomaly" and a.get("anomaly"):
        state = a.get("state") or "raised"
        row = {
            "id": a["anomaly"], "origin": origin, "device": device_of(e.get("camera"), e["device"]),
            "camera": e.get("camera"), "rule": a.get("rule"), "kind": a.get("kind"),
            "severity": a.get("severity"), "state": state, "open": state != "resolved",
            "reason": a.get("reason"), "visit": a.get("visit"), "raised": epoch(a.get("raised_at")) or ts,
            "updated": ts, "body": body,
        }  # fmt: skip
        return anomalies, row
    return None


def ids_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in rows]
