"""What the console's JSON API makes of stored rows and query strings.

Stored device status and stats come from devices (untrusted): every field is checked for the
type the page needs and left out (``None``) when it is anything else, so one odd device never
breaks the device list for everyone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from edge.fleet.store import epoch

LIMIT_MAX = 1000  # rows per list call


def number(v: Any) -> float | int | None:
    """A finite int or float (not a bool); anything else is None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return v if math.isfinite(v) else None


def count(v: Any) -> int | None:
    """A whole, non-negative number (e.g. ``5`` or ``5.0``), else None."""
    n = number(v)
    return int(n) if n is not None and n >= 0 and n == int(n) else None


def mapping(v: Any) -> Mapping[str, Any]:
    """``v`` if it is a JSON object, else an empty one."""
    return v if isinstance(v, dict) else {}


def device_view(d: Mapping[str, Any], now: float) -> dict[str, Any]:
    """A ``devices`` row as the console's device list shows it; invalid parts are None."""
    st = mapping(d.get("stats"))
    cams = mapping(st.get("cameras"))
    outbox = mapping(st.get("outbox"))
    open_ = mapping(st.get("open"))
    seen = number(d.get("last_seen"))
    status = d.get("status")
    opened = {k: count(open_.get(k)) for k in ("visits", "anomalies")}
    return {
        "device": d.get("device"),
        "status": status if isinstance(status, str) and status else "?",
        "last_seen": seen,
        "ago": None if seen is None else round(now - seen),
        "cameras": len(cams),
        "cameras_up": sum(1 for c in cams.values() if mapping(c).get("up") is True),
        "outbox": count(outbox.get("depth")),
        "outbox_age": number(outbox.get("oldest_age")),
        "open": opened if None not in opened.values() else None,
    }


def limit_arg(params: Mapping[str, str], default: int, name: str = "limit") -> int:
    """``?limit=`` as a whole number in 1..:data:`LIMIT_MAX`; ValueError (-> 400) names the problem."""
    v = params.get(name)
    if not v:
        return default
    if not (v.isascii() and v.isdigit() and len(v) <= len(str(LIMIT_MAX)) and 1 <= int(v) <= LIMIT_MAX):
        raise ValueError(f"{name}: a whole number from 1 to {LIMIT_MAX} (got {v[:20]!r})")
    return int(v)


def time_arg(params: Mapping[str, str], name: str) -> float | None:
    """``?since=`` / ``?until=``: epoch seconds or ISO 8601 (UTC when no zone is given)."""
    v = params.get(name)
    if not v:
        return None
    t: float | None
    try:
        t = float(v)
    except ValueError:
        t = epoch(v if ("Z" in v or "+" in v[10:]) else v + "Z")
    if t is None or not math.isfinite(t):
        raise ValueError(f"{name}: not a time ({v[:40]!r}); use ISO 8601 or epoch seconds")
    return t
