"""Weekly opening hours in a local time zone, with exception dates.

``{"mon-fri": "07:00-19:00", "sat": "08:00-12:00,13:00-15:00"}``: days not listed are closed;
a range ending before it starts runs past midnight ("22:00-06:00"); ``closed`` and ``24h`` are
allowed. Exceptions replace a whole date's hours (``2026-12-25: closed``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")

Minutes = tuple[int, int]  # [start, end) in minutes since local midnight; end may exceed 1440


def parse_days(spec: str) -> list[int]:
    """``mon-fri`` / ``sat,sun`` / ``daily`` -> weekday numbers (Monday 0)."""
    spec = spec.strip().lower()
    if spec in ("daily", "every day", "all", "*"):
        return list(range(7))
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            a, b = (p.strip() for p in part.split("-", 1))
            if a not in DAYS or b not in DAYS:
                raise ValueError(f"unknown day range {part!r} (use mon..sun, e.g. mon-fri)")
            i, j = DAYS.index(a), DAYS.index(b)
            out += [(i + k) % 7 for k in range(((j - i) % 7) + 1)]  # wraps: fri-mon
        elif part in DAYS:
            out.append(DAYS.index(part))
        else:
            raise ValueError(f"unknown day {part!r} (use mon..sun, e.g. mon-fri)")
    return out


def parse_hours(spec: str) -> list[Minutes]:
    """``07:00-19:00,20:00-22:00`` / ``closed`` / ``24h`` -> minute ranges."""
    spec = str(spec).strip().lower()
    if spec in ("closed", "none", ""):
        return []
    if spec in ("24h", "open", "00:00-24:00"):
        return [(0, 1440)]
    out: list[Minutes] = []
    for part in spec.split(","):
        m = _RANGE.match(part.strip())
        if not m:
            raise ValueError(f"bad hours {part.strip()!r} (use HH:MM-HH:MM, 'closed' or '24h')")
        h0, m0, h1, m1 = (int(g) for g in m.groups())
        if h0 > 23 or h1 > 24 or m0 > 59 or m1 > 59 or (h1 == 24 and m1):
            raise ValueError(f"bad time in {part.strip()!r}")
        start, end = h0 * 60 + m0, h1 * 60 + m1
        out.append((start, end if end > start else end + 1440))  # overnight range
    return out


def zone(name: str) -> ZoneInfo:
    """An IANA zone (``Africa/Johannesburg``); ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from None


@dataclass(frozen=True)
class WeeklySchedule:
    """Parsed opening hours; :meth:`is_open` answers for an epoch time."""

    weekly: dict[int, list[Minutes]]
    exceptions: dict[date, list[Minutes]]
    tz: ZoneInfo
    text: str = ""
    _tzname: str = field(default="UTC")

    @classmethod
    def parse(cls, weekly: dict[str, str], exceptions: dict[date, str], tz: str) -> WeeklySchedule:
        days: dict[int, list[Minutes]] = {}
        for spec, hours in weekly.items():
            for d in parse_days(spec):
                days.setdefault(d, []).extend(parse_hours(hours))
        exc = {d: parse_hours(h) for d, h in exceptions.items()}
        text = ", ".join(f"{k} {v}" for k, v in weekly.items()) or "closed"
        return cls(days, exc, zone(tz), text, tz)

    def _hours(self, d: date) -> list[Minutes]:
        return self.exceptions[d] if d in self.exceptions else self.weekly.get(d.weekday(), [])

    def is_open(self, ts: float) -> bool:
        """True when ``ts`` falls in an opening range (checking yesterday's overnight ranges too)."""
        local = self.local(ts)
        minute = local.hour * 60 + local.minute + local.second / 60
        today = local.date()
        if any(a <= minute < b for a, b in self._hours(today)):
            return True
        yesterday = today - timedelta(days=1)
        return any(a <= minute + 1440 < b for a, b in self._hours(yesterday))

    def local(self, ts: float) -> datetime:
        """``ts`` as local time in this schedule's zone."""
        return datetime.fromtimestamp(ts, tz=timezone.utc).astimezone(self.tz)

    def describe(self) -> str:
        """``mon-fri 07:00-19:00 Africa/Johannesburg``: for reasons."""
        return f"{self.text} {self._tzname}"


def local_deadline(ts: float, at: time, tz: ZoneInfo) -> float:
    """Epoch time of ``at`` on the local date of ``ts``."""
    local = datetime.fromtimestamp(ts, tz=timezone.utc).astimezone(tz)
    return datetime.combine(local.date(), at, tzinfo=tz).timestamp()
