"""Seed a fleet database with a year of 15-minute count events and time the console's chart queries.

Starts a throw-away PostgreSQL 15 (as ``bench/fleet.py`` does; or ``--url`` an existing one),
creates the schema through the real migrations, then COPYs ``cameras`` x 1 year of 15-minute
rows into ``counts`` (one line per camera, 10 cameras per site; a weekday/weekend diurnal profile,
Poisson counts per direction and type), builds ``counts_hourly`` with one ``INSERT ... SELECT``
and ``ANALYZE``s. Then it runs the queries the counts page makes, through the same code
(:func:`edge.fleet.counts.series`), for random cameras and weeks:

- ``page``: the page's three calls (hourly this week, daily this week, hourly the week before);
- ``month-hourly`` (one camera, 30 days by hour), ``year-daily`` (one camera, 365 days by day),
- ``site-week`` (a site's 10 cameras summed, hourly, one week).

Prints seeding time, rows, database and table sizes, and p50/p95/max per query kind.

Usage: python bench/counts_seed.py [--cameras 1000] [--days 365] [--queries 200] [--url URL]
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.fleet import start_postgres  # noqa: E402
from edge.fleet.counts import series  # noqa: E402
from edge.fleet.migrations.m003_counts import COLUMNS  # noqa: E402
from edge.fleet.store import FleetStore  # noqa: E402

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
STEP = 900
PER_SITE = 10
# share of each type per direction (COLUMNS order within a direction: car van truck bus motorcycle
# bicycle person unknown other)
SHARES = np.array([0.78, 0.08, 0.06, 0.02, 0.02, 0.01, 0.0, 0.02, 0.01])
# vehicles per 15 min per direction by hour of day on a weekday (a busy urban road, ~12k/day)
WEEKDAY = np.array(
    [8, 5, 4, 4, 8, 30, 110, 190, 200, 150, 130, 130, 140, 135, 140, 160, 200, 210, 170, 120, 80, 50, 30, 15]
)
WEEKEND = np.maximum(WEEKDAY * 0.7, 6)


def camera_rows(cam: int, days: int, rng: np.random.Generator) -> bytes:
    """One camera's year as COPY text (tab separated)."""
    n = days * 86400 // STEP
    starts = START + np.arange(n) * STEP
    hours = ((starts % 86400) // 3600).astype(int)
    weekend = (((starts // 86400).astype(int) + 3) % 7) >= 5  # 2026-01-01 is a Thursday
    rate = np.where(weekend, WEEKEND[hours], WEEKDAY[hours]) * (0.5 + (cam % 7) / 6)
    lam = np.concatenate([rate[:, None] * SHARES[None, :], rate[:, None] * SHARES[None, :] * 0.9], axis=1)
    counts = rng.poisson(lam)
    table = np.column_stack([starts.astype(np.int64), counts])
    buf = io.BytesIO()
    site, name = f"site{cam // PER_SITE:04d}", f"cam{cam:05d}"
    fmt = f"{site}\t{name}\tnorth\t%d\t900\t900\t" + "\t".join(["%d"] * len(COLUMNS))
    np.savetxt(buf, table, fmt=fmt)
    return buf.getvalue()


def seed(url: str, cameras: int, days: int) -> dict[str, float]:
    """COPY the 15-minute rows, build the hourly table; returns timings and sizes."""
    import psycopg

    FleetStore(url).close()  # the schema, through the migrations
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    rng = np.random.default_rng(7)
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        cols = ", ".join(["device", "camera", "line", "start", "period", "up", *COLUMNS])
        for first in range(0, cameras, PER_SITE):
            with conn.cursor() as cur, cur.copy(f"COPY counts ({cols}) FROM STDIN") as copy:
                for cam in range(first, min(first + PER_SITE, cameras)):
                    copy.write(camera_rows(cam, days, rng))
            if first % 100 == 0:
                print(f"  {first + PER_SITE} cameras copied, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        out["copy_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        sums = ", ".join(f"SUM({c})" for c in ("period", "up", *COLUMNS))
        conn.execute(
            f"INSERT INTO counts_hourly ({cols}) SELECT device, camera, line, floor(start / 3600) * 3600, {sums} "
            "FROM counts GROUP BY 1, 2, 3, 4"
        )
        out["hourly_s"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        conn.execute("VACUUM ANALYZE counts")
        conn.execute("VACUUM ANALYZE counts_hourly")
        out["analyze_s"] = time.perf_counter() - t2
        for name, q in (
            ("rows", "SELECT count(*) FROM counts"),
            ("hourly_rows", "SELECT count(*) FROM counts_hourly"),
            ("db_bytes", "SELECT pg_database_size(current_database())"),
            ("counts_bytes", "SELECT pg_total_relation_size('counts')"),
            ("hourly_bytes", "SELECT pg_total_relation_size('counts_hourly')"),
        ):
            row = conn.execute(q).fetchone()
            out[name] = float(row[0]) if row else 0.0
    return out


def timed(fn: object, n: int) -> list[float]:
    """``n`` calls of ``fn``, each one's milliseconds."""
    ms = []
    for _ in range(n):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        ms.append((time.perf_counter() - t) * 1000)
    return ms


def queries(url: str, cameras: int, days: int, n: int) -> dict[str, list[float]]:
    """p50/p95 inputs: milliseconds of each query kind for random cameras and ranges."""
    engine = sa.create_engine(url, pool_size=2)
    rnd = random.Random(3)
    week = 7 * 86400

    def pick() -> tuple[str, str, float]:
        cam = rnd.randrange(cameras)
        since = START + rnd.randrange(week // 86400, days - 7) * 86400
        return f"site{cam // PER_SITE:04d}", f"cam{cam:05d}", since

    def page() -> None:
        site, cam, since = pick()
        for b, s in (("hour", since), ("day", since), ("hour", since - week)):
            series(engine, s, s + week, device=site, camera=cam, line="north", bucket=b)  # type: ignore[arg-type]

    def month() -> None:
        site, cam, since = pick()
        series(engine, since - 23 * 86400, since + week, device=site, camera=cam, line="north")

    def year() -> None:
        site, cam, _ = pick()
        series(engine, START, START + days * 86400, device=site, camera=cam, line="north", bucket="day")

    def site_week() -> None:
        site, _, since = pick()
        series(engine, since, since + week, device=site)

    series(engine, START, START + 86400)  # connect, warm the pool
    out = {
        k: timed(f, n)
        for k, f in (("page", page), ("month-hourly", month), ("year-daily", year), ("site-week", site_week))
    }
    engine.dispose()
    return out


def main() -> int:
    """Seed and measure; print the numbers."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", type=int, default=1000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--url", help="an existing PostgreSQL database (default: a throw-away cluster)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edge-counts-seed-"))
    stop: list[str] = []
    try:
        url = args.url
        if url is None:
            url, stop = start_postgres(work)
        s = seed(url, args.cameras, args.days)
        print(
            f"seeded {s['rows']:,.0f} 15-minute rows ({args.cameras} cameras x {args.days} days) in "
            f"{s['copy_s']:.0f} s COPY ({s['rows'] / s['copy_s']:,.0f} rows/s) + {s['hourly_s']:.0f} s hourly "
            f"({s['hourly_rows']:,.0f} rows) + {s['analyze_s']:.0f} s VACUUM ANALYZE; database "
            f"{s['db_bytes'] / 1e9:.2f} GB (counts {s['counts_bytes'] / 1e9:.2f} GB, hourly "
            f"{s['hourly_bytes'] / 1e9:.2f} GB)"
        )
        for kind, ms in queries(url, args.cameras, args.days, args.queries).items():
            p95 = statistics.quantiles(ms, n=20)[-1]
            print(
                f"{kind:13} n={len(ms)} p50 {statistics.median(ms):6.1f} ms  p95 {p95:6.1f} ms  max {max(ms):6.1f} ms"
            )
    finally:
        if stop:
            subprocess.run(stop, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
