"""Count events in the fleet: their rows (``counts``, ``counts_hourly``, ``zone_counts``, see
:mod:`edge.fleet.migrations.m003_counts`), the chart queries and retention.

A count event (edge.counts) becomes one ``counts`` row per line, with a column per direction and
vehicle type (types outside :data:`TYPES` go to ``other``), and one ``zone_counts`` row per zone.
``counts_hourly`` is summed in the same transaction, only from rows that were new, so a
redelivered event changes nothing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.fleet.config import FleetCounts
from edge.fleet.migrations.m003_counts import COLUMNS, DIRS, TYPES, counts, counts_hourly, zone_counts

log = logging.getLogger("edge.fleet.counts")
MAX_PER_INTERVAL = 1_000_000  # crossings of one line, direction and type in one interval: more is garbage
_Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]
_Count = Annotated[int, Field(ge=0, le=MAX_PER_INTERVAL)]


class _Zone(BaseModel):
    model_config = ConfigDict(extra="forbid")

    peak: Annotated[int, Field(ge=0, le=MAX_PER_INTERVAL)]
    mean: Annotated[float, Field(ge=0, le=MAX_PER_INTERVAL, allow_inf_nan=False)]
    dwell: Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]
    n: _Count


class CountAttrs(BaseModel):
    """The ``attrs`` of a ``count`` event (docs/events.md)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=False)

    start: str = Field(alias="from", max_length=40, description="ISO 8601 start of the interval")
    period: Annotated[float, Field(gt=0, le=86_400)]
    up: Annotated[float, Field(ge=0, le=86_400)] = 0
    lines: dict[_Key, dict[Literal["in", "out"], dict[_Key, _Count]]] = Field(default_factory=dict, max_length=64)
    zones: dict[_Key, _Zone] = Field(default_factory=dict, max_length=64)


def parse_attrs(e: dict[str, Any]) -> CountAttrs:
    """The checked attrs of count event ``e``; ValueError naming the first bad field."""
    try:
        return CountAttrs.model_validate(e.get("attrs") or {}, strict=True)
    except ValidationError as err:
        first = err.errors(include_input=False, include_url=False)[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ValueError(f"attrs.{loc}: {first['msg']}"[:200]) from None


def _column(direction: str, kind: str) -> str:
    return f"{direction}_{kind if kind in TYPES else 'other'}"


def rows_of(e: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(``counts`` rows, ``zone_counts`` rows) of a decoded count event; ValueError naming a bad field."""
    a = parse_attrs(e)
    try:
        start = datetime.fromisoformat(a.start.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        raise ValueError("attrs.from: not an ISO 8601 time") from None
    key = {"device": e["device"], "camera": e["camera"], "start": start}
    period = int(round(a.period))
    lines = []
    for line, dirs in sorted(a.lines.items()):
        row: dict[str, Any] = {**key, "line": line, "period": period, "up": int(round(a.up))}
        row.update(dict.fromkeys(COLUMNS, 0))
        for direction, types in dirs.items():
            for kind, n in types.items():
                row[_column(direction, kind)] += n
        lines.append(row)
    zones = [
        {**key, "zone": name, "period": period, "peak": z.peak, "mean": z.mean, "dwell": z.dwell, "entries": z.n}
        for name, z in sorted(a.zones.items())
    ]
    return lines, zones


def write_counts(conn: sa.Connection, insert: Callable[[sa.Table], Any], e: dict[str, Any]) -> None:
    """Store a new count event's rows; add the lines that were new to ``counts_hourly``."""
    lines, zones = rows_of(e)
    for row in lines:
        stmt = insert(counts).on_conflict_do_nothing().returning(counts.c.line)
        if conn.execute(stmt, row).first() is None:
            continue  # already stored: the hour has it
        hour = dict(row, start=math.floor(row["start"] / 3600) * 3600.0)
        ins = insert(counts_hourly).values(**hour)
        add = {c: counts_hourly.c[c] + ins.excluded[c] for c in (*COLUMNS, "period", "up")}
        conn.execute(ins.on_conflict_do_update(index_elements=["device", "camera", "line", "start"], set_=add))
    if zones:
        conn.execute(insert(zone_counts).on_conflict_do_nothing(), zones)


def series(
    engine: sa.Engine,
    since: float,
    until: float,
    *,
    device: str | None = None,
    camera: str | None = None,
    line: str | None = None,
    bucket: Literal["hour", "day"] = "hour",
    tz: str = "UTC",
) -> list[dict[str, Any]]:
    """Crossings per hour or per local day in [since, until): ``{"t": iso, "in_car": n, ...}``
    for every bucket with data, summed over the cameras/lines the filters leave."""
    table = counts_hourly
    where = _filtered(table, since, until, "start", device=device, camera=camera, line=line)
    q = (
        sa.select(table.c.start, *(sa.func.sum(table.c[c]).label(c) for c in COLUMNS))
        .where(*where)
        .group_by(table.c.start)
        .order_by(table.c.start)
    )
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    if not rows:
        return []
    # numpy, not a Python loop per row: a year of hours is 8,760 rows x 18 columns
    data = np.array([tuple(r) for r in rows], dtype=np.float64)
    starts, values = data[:, 0], data[:, 1:].astype(np.int64)
    offsets = _utc_offsets(starts, ZoneInfo(tz))
    local = starts + offsets
    keys = np.floor(local / (3600 if bucket == "hour" else 86400)).astype(np.int64)
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    sums = np.zeros((len(uniq), len(COLUMNS)), dtype=np.int64)
    np.add.at(sums, inverse, values)
    out = []
    for i, k in enumerate(uniq):
        out.append(
            {"t": _label(int(k), int(offsets[first[i]]), bucket), **dict(zip(COLUMNS, map(int, sums[i]), strict=True))}
        )
    return out


def _utc_offsets(starts: np.ndarray, zone: ZoneInfo) -> np.ndarray:
    """Seconds east of UTC at each epoch of ``starts`` (one zoneinfo call per UTC day, per hour
    only on days whose offset changes)."""
    days = np.floor(starts / 86400).astype(np.int64)
    out = np.zeros(len(starts))
    for day in np.unique(days):
        at = [datetime.fromtimestamp(float(day * 86400 + h), timezone.utc).astimezone(zone) for h in (0, 86399)]
        a, b = (x.utcoffset() for x in at)
        sel = days == day
        if a == b:
            out[sel] = a.total_seconds() if a is not None else 0.0
        else:  # a DST change on this day: each hour on its own
            for i in np.nonzero(sel)[0]:
                off = datetime.fromtimestamp(float(starts[i]), timezone.utc).astimezone(zone).utcoffset()
                out[i] = off.total_seconds() if off is not None else 0.0
    return out


def _label(key: int, offset: int, bucket: str) -> str:
    """``2026-11-28T07:00+0100`` (hour ``key`` of local time) or ``2026-11-28`` (day ``key``)."""
    if bucket == "day":
        return datetime.fromtimestamp(key * 86400, timezone.utc).strftime("%Y-%m-%d")
    sign, mins = ("+" if offset >= 0 else "-"), abs(offset) // 60
    return (
        datetime.fromtimestamp(key * 3600, timezone.utc).strftime("%Y-%m-%dT%H:00")
        + f"{sign}{mins // 60:02d}{mins % 60:02d}"
    )


def _filtered(table: sa.Table, since: float, until: float, time_col: str, **names: str | None) -> list[Any]:
    where = [table.c[time_col] >= since, table.c[time_col] < until]
    return where + [table.c[k] == v for k, v in names.items() if v is not None]


def occupancy_by_hour(
    engine: sa.Engine, since: float, until: float, tz: str = "UTC", **names: str | None
) -> list[dict[str, Any]]:
    """Per zone and local hour of day (0-23) over [since, until): the mean of the intervals' mean
    occupancy and the highest peak: ``{"zone": z, "hour": h, "mean": x, "peak": n}``; ``names``:
    ``device``/``camera`` filters (None: all)."""
    t = zone_counts
    q = sa.select(t.c.zone, t.c.start, t.c.mean, t.c.peak).where(*_filtered(t, since, until, "start", **names))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    out = []
    for zone in sorted({r[0] for r in rows}):
        data = np.array([(r[1], r[2], r[3]) for r in rows if r[0] == zone], dtype=np.float64)
        hours = (np.floor((data[:, 0] + _utc_offsets(data[:, 0], ZoneInfo(tz))) / 3600) % 24).astype(np.int64)
        for h in np.unique(hours):
            sel = hours == h
            mean, peak = float(data[sel, 1].mean()), int(data[sel, 2].max())
            out.append({"zone": zone, "hour": int(h), "mean": round(mean, 2), "peak": peak})
    return out


def anomalies_per_day(
    engine: sa.Engine, since: float, until: float, tz: str = "UTC", **names: str | None
) -> list[dict[str, Any]]:
    """Anomalies raised per local day: ``{"t": "2026-11-28", "n": 3}`` for days with any."""
    from edge.fleet.migrations.m001_initial import anomalies

    q = sa.select(anomalies.c.raised).where(*_filtered(anomalies, since, until, "raised", **names))
    with engine.connect() as conn:
        raised = np.array([r[0] for r in conn.execute(q)], dtype=np.float64)
    if not len(raised):
        return []
    days = np.floor((raised + _utc_offsets(raised, ZoneInfo(tz))) / 86400).astype(np.int64)
    uniq, n = np.unique(days, return_counts=True)
    return [{"t": _label(int(d), 0, "day"), "n": int(k)} for d, k in zip(uniq, n, strict=True)]


def choices(engine: sa.Engine) -> list[dict[str, str]]:
    """Every (device, camera, line) that has hourly counts: the console's pickers."""
    t = counts_hourly
    q = sa.select(t.c.device, t.c.camera, t.c.line).distinct().order_by(t.c.device, t.c.camera, t.c.line)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def prune(engine: sa.Engine, now: float, raw_days: float, hourly_days: float) -> int:
    """Retention: delete 15-minute and zone rows older than ``raw_days`` and hourly rows older
    than ``hourly_days``; returns the rows deleted."""
    deleted = 0
    with engine.begin() as conn:
        for table, days in ((counts, raw_days), (zone_counts, raw_days), (counts_hourly, hourly_days)):
            deleted += conn.execute(table.delete().where(table.c.start < now - days * 86400)).rowcount or 0
    return deleted


class Retention:
    """A thread that runs :func:`prune` every ``cfg.prune_every_s`` seconds (first run at start)."""

    def __init__(self, engine: sa.Engine, cfg: FleetCounts) -> None:
        self.engine, self.cfg = engine, cfg
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edge-fleet-count-retention", daemon=True)

    def start(self) -> Retention:
        """Start the thread."""
        self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            try:
                n = prune(self.engine, time.time(), self.cfg.raw_days, self.cfg.hourly_days)
                if n:
                    log.info("count retention: %d old rows deleted", n)
            except sa.exc.SQLAlchemyError as err:  # the database is down: try again next time
                log.warning("count retention failed: %s", str(err).splitlines()[0][:200])
            if self._stop.wait(self.cfg.prune_every_s):
                return

    def stop(self) -> None:
        """Stop the thread (a running prune finishes first)."""
        self._stop.set()
        self._thread.join(30)


__all__ = [
    "COLUMNS",
    "DIRS",
    "TYPES",
    "choices",
    "parse_attrs",
    "Retention",
    "prune",
    "rows_of",
    "series",
    "write_counts",
]
