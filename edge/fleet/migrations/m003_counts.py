"""Version 3: count events as a time series (docs/fleet.md, counts).

Plain PostgreSQL/SQLite, no partitioning, no TimescaleDB (not in Debian's archive here): the
console's queries read one camera/line (or a site's cameras) over a time range, which a B-tree on
``(device, camera, line, start)`` answers as a range scan, and ``counts_hourly`` (kept up to date
on ingest) makes a year of hourly/daily charts 4x fewer rows than the 15-minute table. One row per
interval and line with a column per direction and vehicle type keeps 1,000 cameras x 1 year at
35 M narrow rows that sum with plain ``SUM``. Retention deletes by ``start`` (same index order
through ``ix_counts_start``).
"""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 3
NAME = "counts"

DIRS = ("in", "out")
TYPES = ("car", "van", "truck", "bus", "motorcycle", "bicycle", "person", "unknown", "other")
COLUMNS = tuple(f"{d}_{t}" for d in DIRS for t in TYPES)  # in_car ... out_other

metadata = sa.MetaData()


def _count_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("device", sa.String(64), primary_key=True),
        sa.Column("camera", sa.String(64), primary_key=True),
        sa.Column("line", sa.String(64), primary_key=True),
        sa.Column("start", sa.Float, primary_key=True),  # epoch s of the interval (hour) start
        sa.Column("period", sa.Integer, nullable=False),  # seconds covered: 900 per interval, summed per hour
        sa.Column("up", sa.Integer, nullable=False),  # seconds the device counted
        *(sa.Column(c, sa.Integer, nullable=False, server_default="0") for c in COLUMNS),
        sa.Index(f"ix_{name}_start", "start"),
    )


counts = _count_table("counts")  # one row per count event and line (edge.counts)
counts_hourly = _count_table("counts_hourly")  # the same summed per UTC hour
zone_counts = sa.Table(
    "zone_counts",
    metadata,
    sa.Column("device", sa.String(64), primary_key=True),
    sa.Column("camera", sa.String(64), primary_key=True),
    sa.Column("zone", sa.String(64), primary_key=True),
    sa.Column("start", sa.Float, primary_key=True),
    sa.Column("period", sa.Integer, nullable=False),
    sa.Column("peak", sa.Integer, nullable=False),
    sa.Column("mean", sa.Float, nullable=False),
    sa.Column("dwell", sa.Float, nullable=False),
    sa.Column("entries", sa.Integer, nullable=False),
    sa.Index("ix_zone_counts_start", "start"),
)


def upgrade(conn: sa.Connection) -> None:
    """Create ``counts``, ``counts_hourly`` and ``zone_counts``."""
    metadata.create_all(conn)
