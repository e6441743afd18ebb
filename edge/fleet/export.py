"""Visits and anomalies of a time range as CSV or JSON (console downloads, scripts)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from typing import Any

from edge.fleet.store import FleetStore

VISIT_COLUMNS = [
    "id", "origin", "device", "exit_device", "entry_camera", "exit_camera", "status", "plate", "vtype",
    "road_in", "road_out", "time_in", "time_out", "evidence",
]  # fmt: skip
ANOMALY_COLUMNS = [
    "id", "origin", "device", "camera", "rule", "kind", "severity", "state", "open", "reason", "visit", "raised",
    "updated",
]  # fmt: skip
TIME_FIELDS = {"time_in", "time_out", "raised", "updated"}
LIMIT = 1_000_000


def iso(t: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC (ms)."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rows(store: FleetStore, what: str, since: float | None, until: float | None) -> list[dict[str, Any]]:
    """``visits`` (by entry time) or ``anomalies`` (by raise time) in [since, until), times as ISO text."""
    if what == "visits":
        data, cols = store.visits(since=since, until=until, limit=LIMIT), VISIT_COLUMNS
    elif what == "anomalies":
        data, cols = store.anomalies(since=since, until=until, limit=LIMIT), ANOMALY_COLUMNS
    else:
        raise ValueError(f"nothing to export called {what!r} (visits, anomalies)")
    return [{c: iso(r[c]) if c in TIME_FIELDS else r[c] for c in cols} for r in data]


def to_csv(data: list[dict[str, Any]], what: str) -> str:
    """CSV with a header row (the column set of ``what``)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=VISIT_COLUMNS if what == "visits" else ANOMALY_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(data)
    return buf.getvalue()


def to_json(data: list[dict[str, Any]]) -> str:
    """A JSON array."""
    return json.dumps(data, separators=(",", ":"))
