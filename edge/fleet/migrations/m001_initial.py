"""Version 1: events, visits, anomalies, devices, snapshots, commands."""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 1
NAME = "initial"

metadata = sa.MetaData()
ID = sa.String(64)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # the event's uuid4 hex: the dedupe key
    sa.Column("device", sa.String(100), nullable=False),
    sa.Column("camera", sa.String(100), nullable=False),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("phase", sa.String(10)),
    sa.Column("ts", sa.Float, nullable=False),  # epoch seconds of the event's ts
    sa.Column("seq", sa.BigInteger),
    sa.Column("track", sa.BigInteger),
    sa.Column("plate", sa.String(64)),
    sa.Column("vtype", sa.String(64)),
    sa.Column("received", sa.Float, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index("ix_events_device_ts", "device", "ts"),
    sa.Index("ix_events_type_ts", "type", "ts"),
)

visits = sa.Table(
    "visits",
    metadata,
    sa.Column("id", ID, primary_key=True),  # visit id (uuid4 hex from the engine that made it)
    sa.Column("origin", sa.String(100), nullable=False),  # device id, or the fleet engine's id
    sa.Column("device", sa.String(100), nullable=False),  # entry device
    sa.Column("exit_device", sa.String(100)),
    sa.Column("entry_camera", sa.String(200)),
    sa.Column("exit_camera", sa.String(200)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("plate", sa.String(64)),
    sa.Column("vtype", sa.String(64)),
    sa.Column("road_in", sa.String(100)),
    sa.Column("road_out", sa.String(100)),
    sa.Column("time_in", sa.Float),
    sa.Column("time_out", sa.Float),
    sa.Column("evidence", sa.String(32)),  # first evidence event (the entry crossing): feedback target
    sa.Column("event_id", sa.String(32)),  # the latest visit event
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index("ix_visits_time_in", "time_in"),
    sa.Index("ix_visits_device", "device", "time_in"),
    sa.Index("ix_visits_plate", "plate"),
)

anomalies = sa.Table(
    "anomalies",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("origin", sa.String(100), nullable=False),  # who raised it, and who gets ack/resolve
    sa.Column("device", sa.String(100), nullable=False),
    sa.Column("camera", sa.String(200)),
    sa.Column("rule", sa.String(64)),
    sa.Column("kind", sa.String(32)),
    sa.Column("severity", sa.String(16)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("open", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("visit", ID),
    sa.Column("raised", sa.Float),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index("ix_anomalies_open", "open", "raised"),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("device", sa.String(100), primary_key=True),
    sa.Column("status", sa.String(20)),
    sa.Column("status_at", sa.Float),
    sa.Column("last_seen", sa.Float),
    sa.Column("stats", sa.Text),
    sa.Column("stats_at", sa.Float),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("event_id", sa.String(32), primary_key=True),
    sa.Column("device", sa.String(100), nullable=False),
    sa.Column("camera", sa.String(100), nullable=False),
    sa.Column("jpeg", sa.LargeBinary, nullable=False),
    sa.Column("received", sa.Float, nullable=False),
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("device", sa.String(100), nullable=False),
    sa.Column("cmd", sa.String(20), nullable=False),
    sa.Column("target", sa.String(64)),  # anomaly or event id
    sa.Column("user", sa.String(100)),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("sent", sa.Float, nullable=False),
    sa.Column("ok", sa.Boolean),
    sa.Column("reply", sa.Text),
    sa.Column("replied", sa.Float),
    sa.Index("ix_commands_sent", "sent"),
)


def upgrade(conn: sa.Connection) -> None:
    """Create the version-1 tables."""
    metadata.create_all(conn)
