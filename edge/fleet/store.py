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
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from edge.fleet.migrations import migrate
from edge.fleet.migrations.m001_initial import anomalies, commands, devices, events, snapshots, visits


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


class FleetStore:
    """Every read and write of the console and the ingest workers."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self.version = migrate(self.engine)
        self._touched: dict[str, float] = {}

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    # --- writes -----------------------------------------------------------------------------

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
            for origin, e in batch.derived:
                self._derived(conn, origin, e)
            if batch.snapshots:
                batch.snapshots.sort(key=lambda r: r["event_id"])
                conn.execute(
                    self._insert(snapshots).on_conflict_do_nothing(index_elements=["event_id"]), batch.snapshots
                )
        if batch.events:
            self._touch({e["device"] for e in batch.events}, now)
        return new

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
        with self.engine.begin() as conn:
            for dev in due:
                self._touched[dev] = now
                ins = self._insert(devices).values(device=dev, last_seen=now)
                conn.execute(ins.on_conflict_do_update(index_elements=["device"], set_={"last_seen": now}))

    def _derived(self, conn: sa.Connection, origin: str, e: dict[str, Any]) -> None:
        """Upsert the visit or anomaly an event describes (the newest ``updated`` wins)."""
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
            table = visits
        elif e["type"] == "anomaly" and a.get("anomaly"):
            state = a.get("state") or "raised"
            row = {
                "id": a["anomaly"], "origin": origin, "device": device_of(e.get("camera"), e["device"]),
                "camera": e.get("camera"), "rule": a.get("rule"), "kind": a.get("kind"),
                "severity": a.get("severity"), "state": state, "open": state != "resolved",
                "reason": a.get("reason"), "visit": a.get("visit"), "raised": epoch(a.get("raised_at")) or ts,
                "updated": ts, "body": body,
            }  # fmt: skip
            table = anomalies
        else:
            return
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
        conn.execute(ins.on_conflict_do_update(index_elements=["id"], set_=upd, where=guard))

    def device_status(self, device: str, status: str | None = None, stats: dict[str, Any] | None = None) -> None:
        """Record a device's retained status or its periodic stats."""
        now = time.time()
        vals: dict[str, Any] = {"device": device, "last_seen": now}
        if status is not None:
            vals.update(status=status, status_at=now)
        if stats is not None:
            vals.update(stats=json.dumps(stats, separators=(",", ":")), stats_at=now)
        ins = self._insert(devices).values(**vals)
        with self.engine.begin() as conn:
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["device"], set_={k: v for k, v in vals.items() if k != "device"}
                )
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

    def command_reply(self, reply: dict[str, Any]) -> bool:
        """Attach a device's reply to the command it answers; False if it is not ours."""
        cid = reply.get("id")
        if not isinstance(cid, str):
            return False
        with self.engine.begin() as conn:
            res = conn.execute(
                commands.update()
                .where(commands.c.id == cid)
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
    ) -> list[dict[str, Any]]:
        """Visits, newest entry first, filtered (plate: substring, case-insensitive)."""
        q = sa.select(*[c for c in visits.c if c.name != "body"])
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
        return self._all(q.order_by(visits.c.time_in.desc().nulls_last(), visits.c.id).limit(limit))

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

    def anomaly(self, anomaly_id: str) -> dict[str, Any] | None:
        rows = self._all(sa.select(anomalies).where(anomalies.c.id == anomaly_id))
        return rows[0] if rows else None

    def visit(self, visit_id: str) -> dict[str, Any] | None:
        rows = self._all(sa.select(visits).where(visits.c.id == visit_id))
        return rows[0] if rows else None

    def devices(self) -> list[dict[str, Any]]:
        """Devices with their stats decoded."""
        rows = self._all(sa.select(devices).order_by(devices.c.device))
        for r in rows:
            r["stats"] = json.loads(r["stats"]) if r["stats"] else None
        return rows

    def commands(self, limit: int = 50) -> list[dict[str, Any]]:
        """Latest commands with their replies."""
        rows = self._all(sa.select(commands).order_by(commands.c.sent.desc()).limit(limit))
        for r in rows:
            r["reply"] = json.loads(r["reply"]) if r["reply"] else None
        return rows

    def command(self, cmd_id: str) -> dict[str, Any] | None:
        rows = [r for r in self._all(sa.select(commands).where(commands.c.id == cmd_id))]
        if rows and rows[0]["reply"]:
            rows[0]["reply"] = json.loads(rows[0]["reply"])
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
        """Counts for the console header and the live-update stream."""
        with self.engine.connect() as conn:
            n_events = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() or 0
            n_visits = conn.execute(sa.select(sa.func.count()).select_from(visits)).scalar() or 0
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
            "events": int(n_events), "visits": int(n_visits), "open_anomalies": int(n_open),
            "mark": f"{n_events}:{n_visits}:{n_open}:{last_v}:{last_a}:{last_c}:{int(last_d)}",
        }  # fmt: skip


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


def ids_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in rows]
