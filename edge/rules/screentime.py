"""Screen time: how many seconds each class of a whole-frame classifier was on screen, per period.

A bus :class:`~edge.events.bus.Processor` that reads ``state`` events (``start``/``end``, label =
class, ``start`` = when it began; see :mod:`edge.tracking.scene`) and emits one ``screentime``
event per camera and period (default an hour, aligned to the UTC clock: 05:00-06:00, ...):

``attrs = {"period": 3600, "from": iso, "to": iso, "totals": {class: seconds}, "none": seconds}``

``none`` is the time in the explicit "none of the classes" state. A state that spans a period
boundary is split at it. A period is emitted when an event (or :meth:`tick`) shows it is over;
:meth:`close` emits the final partial period (end of stream, shutdown).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from edge.events.schema import Event, epoch, utc_iso
from edge.tracking.scene import NONE

_LATE = 5.0  # tick waits this long past a period's end so events of its last frames are in


@dataclass
class _Camera:
    device: str
    period_start: float
    open: tuple[str, float] | None = None  # (label, since) of the state on screen now
    totals: dict[str, float] = field(default_factory=dict)
    last: float = 0.0  # latest time seen: the end of a final partial period


class ScreenTime:
    """Sums state durations per class, camera and clock-aligned period."""

    def __init__(self, period: float = 3600.0) -> None:
        if period <= 0:
            raise ValueError("screentime period: must be > 0 seconds")
        self.period = float(period)
        self._cams: dict[str, _Camera] = {}
        self._lock = threading.Lock()  # camera threads and the tick thread call in concurrently

    def _floor(self, t: float) -> float:
        return math.floor(t / self.period) * self.period

    def process(self, event: Event) -> list[Event]:
        """Count a state event; returns the ``screentime`` events of periods it shows are over."""
        if event.type != "state" or event.phase not in ("start", "end") or not event.label:
            return []
        at = epoch(event.ts)
        since = epoch(event.start) if event.start else at
        with self._lock:
            cam = self._cams.get(event.camera)
            if cam is None:
                cam = self._cams[event.camera] = _Camera(event.device, self._floor(since))
            out = self._advance(event.camera, cam, since if event.phase == "start" else at)
            if event.phase == "start":
                if cam.open is not None:  # a missed end: the old state lasted until this one began
                    self._add(cam, cam.open[0], cam.open[1], since)
                cam.open = (event.label, since)
            else:
                self._add(cam, event.label, since, at)
                cam.open = None
            cam.last = max(cam.last, at)
        return out

    def tick(self, now: float) -> list[Event]:
        """Emit periods that ended (a state still on screen is split at the boundary)."""
        out: list[Event] = []
        with self._lock:
            for name, cam in self._cams.items():
                if cam.open is not None:  # an idle camera with nothing open has nothing to report
                    out += self._advance(name, cam, now - _LATE)
        return out

    def close(self, now: float | None = None) -> list[Event]:
        """The final partial period of every camera (a state still open counts until ``now``,
        default the last time seen)."""
        out: list[Event] = []
        with self._lock:
            for name, cam in self._cams.items():
                end = cam.last if now is None else max(now, cam.last)
                out += self._advance(name, cam, end)
                if cam.open is not None:
                    self._add(cam, cam.open[0], cam.open[1], end)
                    cam.open = None
                if cam.totals and end > cam.period_start:
                    out.append(self._event(name, cam, end))
                cam.totals = {}
            self._cams.clear()
        return out

    # -- helpers (lock held) -------------------------------------------------------------------

    def _add(self, cam: _Camera, label: str, since: float, until: float) -> None:
        """Count [since, until] clipped to the current period (earlier parts were counted before)."""
        seconds = until - max(since, cam.period_start)
        if seconds > 0:
            cam.totals[label] = cam.totals.get(label, 0.0) + seconds

    def _advance(self, name: str, cam: _Camera, t: float) -> list[Event]:
        """Close every period that ends at or before ``t``."""
        out: list[Event] = []
        while t >= cam.period_start + self.period:
            end = cam.period_start + self.period
            if cam.open is None and not cam.totals:  # nothing on screen: skip to t's period
                cam.period_start = self._floor(t)
                break
            if cam.open is not None:
                self._add(cam, cam.open[0], cam.open[1], end)
            out.append(self._event(name, cam, end))
            cam.period_start, cam.totals = end, {}
        return out

    def _event(self, name: str, cam: _Camera, end: float) -> Event:
        totals = {k: round(v, 2) for k, v in sorted(cam.totals.items()) if k != NONE}
        return Event(
            device=cam.device,
            camera=name,
            type="screentime",
            ts=utc_iso(end),
            attrs={
                "period": int(self.period) if self.period.is_integer() else self.period,
                "from": utc_iso(cam.period_start),
                "to": utc_iso(end),
                "totals": totals,
                "none": round(cam.totals.get(NONE, 0.0), 2),
            },
        )
