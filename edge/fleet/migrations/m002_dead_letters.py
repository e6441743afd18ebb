"""Version 2: the dead-letter table (messages ingest refused, with why), and stats that are not a
JSON object cleared (stored before ingest validated them; they broke the device list)."""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 2
NAME = "dead_letters"

metadata = sa.MetaData()

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    # BIGSERIAL on PostgreSQL; SQLite autoincrements only an INTEGER primary key (its rowid)
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("received", sa.Float, nullable=False),  # epoch seconds
    sa.Column("topic", sa.String(200), nullable=False),  # as received, cut, control characters replaced
    sa.Column("reason", sa.String(32), nullable=False),  # the edge_fleet_rejected_total reason
    sa.Column("detail", sa.String(300), nullable=False),  # which field, what was wrong (no input values)
    sa.Column("size", sa.Integer, nullable=False),  # payload bytes
    sa.Column("payload", sa.LargeBinary, nullable=False),  # its first bytes (DEAD_LETTER_BYTES)
    sa.Index("ix_dead_letters_received", "received"),
)


def upgrade(conn: sa.Connection) -> None:
    """Create ``dead_letters``; clear stored stats that are not a JSON object."""
    metadata.create_all(conn)
    conn.execute(sa.text("UPDATE devices SET stats = NULL, stats_at = NULL WHERE stats NOT LIKE '{%'"))
