"""The console's counts: the ``/counts`` page (charts drawn by the vendored Chart.js), the JSON
API ``/api/counts``, ``/api/counts/choices`` and ``/api/counts/context`` (zone occupancy by hour
of day, anomalies per day), and the CSV export ``/export/counts.csv``.

Every query reads ``counts_hourly`` (edge.fleet.counts): hours, or local days of a time zone.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from edge.fleet import counts
from edge.fleet.store import FleetStore
from edge.fleet.web.views import time_arg

DEFAULT_DAYS = 7
MAX_DAYS = 400  # a year and a bit per request: 9,600 hourly buckets at most


def query_of(params: Mapping[str, str], now: float) -> dict[str, Any]:
    """The series arguments of ``?device=&camera=&line=&since=&until=&bucket=hour|day&tz=``;
    ValueError (-> 400) names the bad parameter."""
    until = time_arg(params, "until") or now
    since = time_arg(params, "since") or until - DEFAULT_DAYS * 86400
    if not since < until or until - since > MAX_DAYS * 86400:
        raise ValueError(f"since/until: a range of up to {MAX_DAYS} days, since before until")
    bucket = params.get("bucket") or "hour"
    if bucket not in ("hour", "day"):
        raise ValueError("bucket: hour or day")
    tz = params.get("tz") or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"tz: unknown time zone {tz[:40]!r} (an IANA name such as Europe/Berlin)") from None
    names = {k: (params.get(k) or None) for k in ("device", "camera", "line")}
    return {"since": since, "until": until, "bucket": bucket, "tz": tz, **names}


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Series rows as CSV: ``t`` then one column per direction and type."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["t", *counts.COLUMNS], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def count_routes(
    store: FleetStore,
    templates: Jinja2Templates,
    api: Callable[[Callable[[Request], Any]], Callable[[Request], Any]],
    signed_in: Callable[[Request], bool],
) -> list[Route]:
    """The counts routes of the console (``api`` wraps a JSON reader with the session check)."""

    def get_counts(r: Request) -> Any:
        q = query_of(r.query_params, time.time())
        return {"columns": list(counts.COLUMNS), **q, "rows": counts.series(store.engine, **q)}

    def get_zones(r: Request) -> Any:
        q = query_of(r.query_params, time.time())
        args = {k: q[k] for k in ("since", "until", "device", "camera", "tz")}
        return {
            "occupancy": counts.occupancy_by_hour(store.engine, **args),
            "anomalies": counts.anomalies_per_day(store.engine, **args),
        }

    def get_choices(_r: Request) -> Any:
        return counts.choices(store.engine)

    async def page(request: Request) -> Response:
        if not signed_in(request):
            return RedirectResponse("/login", status_code=303)
        return templates.TemplateResponse(request, "counts.html", {})

    async def export(request: Request) -> Response:
        if not signed_in(request):
            return PlainTextResponse("sign in first", status_code=401)
        try:
            q = query_of(request.query_params, time.time())
        except ValueError as err:
            return PlainTextResponse(str(err), status_code=400)
        rows = await asyncio.to_thread(lambda: counts.series(store.engine, **q))
        headers = {"Content-Disposition": f'attachment; filename="counts-{q["bucket"]}.csv"'}
        return Response(to_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)

    return [
        Route("/counts", page),
        Route("/api/counts", api(get_counts)),
        Route("/api/counts/choices", api(get_choices)),
        Route("/api/counts/context", api(get_zones)),
        Route("/export/counts.csv", export),
    ]
