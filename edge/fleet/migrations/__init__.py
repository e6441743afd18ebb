"""Versioned schema migrations, applied in order by :func:`migrate` (same code for SQLite and PostgreSQL).

Each migration is a module ``mNNN_<name>.py`` with ``VERSION`` and ``upgrade(conn)``; a migration
defines the tables it creates itself (frozen), so later schema changes never rewrite history.
``schema_version`` records what was applied. On PostgreSQL a transaction-scoped advisory lock
serialises workers that start together (SQLite is one instance's file).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType

import sqlalchemy as sa

from edge.fleet.migrations import m001_initial, m002_dead_letters, m003_counts

MIGRATIONS: list[ModuleType] = [m001_initial, m002_dead_letters, m003_counts]
LOCK_KEY = 0x0ED6EF1EE7  # pg_advisory_xact_lock key of edge fleet migrations

version_table = sa.Table(
    "schema_version",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("applied", sa.Float, nullable=False),
)


def current_version(conn: sa.Connection) -> int:
    """Highest applied version (0: empty database)."""
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(sa.select(sa.func.max(version_table.c.version))).scalar() or 0)


def migrate(engine: sa.Engine, log: Callable[[str], object] = lambda _m: None) -> int:
    """Apply every missing migration in one transaction; returns the schema version."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        version_table.create(conn, checkfirst=True)
        have = current_version(conn)
        for mod in MIGRATIONS:
            if mod.VERSION > have:
                mod.upgrade(conn)
                conn.execute(version_table.insert().values(version=mod.VERSION, name=mod.NAME, applied=time.time()))
                log(f"schema migrated to {mod.VERSION} ({mod.NAME})")
                have = mod.VERSION
        return have
