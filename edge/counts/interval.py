"""Wall-clock intervals in a time zone: 15 minutes means 10:00, 10:15, ... local time."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


class Intervals:
    """Boundaries of ``minutes``-long intervals (a divisor of a day) aligned to local midnight."""

    def __init__(self, minutes: float, tz: str) -> None:
        self.step = float(minutes) * 60.0
        self.tz = ZoneInfo(tz)

    def start(self, ts: float) -> float:
        """Epoch start of the interval that holds ``ts``."""
        local = datetime.fromtimestamp(ts, self.tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        # aware datetimes with one tzinfo subtract as wall-clock times: alignment to the local clock
        wall = (local.replace(tzinfo=None) - midnight.replace(tzinfo=None)).total_seconds()
        k = math.floor(wall / self.step)
        return (midnight + timedelta(seconds=k * self.step)).timestamp()

    def end(self, start: float) -> float:
        """Epoch end of the interval starting at ``start`` (the next boundary; days of 23 or 25
        hours keep intervals of a day or more on local midnight)."""
        end = self.start(start + self.step * 1.5)
        return end if end > start else start + self.step
