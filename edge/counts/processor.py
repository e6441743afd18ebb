"""The count processor: a bus :class:`~edge.events.bus.Processor` that turns ``line`` and ``zone``
events into one ``count`` event per camera and wall-clock interval, and, for the cameras at
``events.detail: crossings``, ``line`` events into one ``crossings`` event per camera and minute
(:mod:`edge.counts.batching`; the detail filter then sends the batch instead of the line events).

An interval closes when an event or :meth:`CountProcessor.tick` (``LATE`` s after its end, so
the crossings of its last frames are in) shows it is over; a crossing that arrives after its
interval closed counts in the open one. Every camera with lines or zones gets an event per
interval, zeros included, while the device runs (``up`` says for how many seconds).

Delivered once: with a state file (``edge run``), every change to an open interval is written
before it is counted as done; a closed interval stays in the file, marked closed, until the bus
hands the processor its own ``count`` event back (the sinks, the outbox among them, have it). A
kill -9 in between re-sends it after the restart with the same id, which consumers deduplicate.
Without a state file (replays) :meth:`close` emits the last partial interval instead.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edge.counts.batch import BATCH_S
from edge.counts.batching import Batcher
from edge.counts.detail import BATCHED
from edge.counts.interval import Intervals
from edge.counts.store import CountStore
from edge.counts.tally import MAX_GAP, Tally, ZoneTally
from edge.events.payloads import LineAttrs, ZoneAttrs
from edge.events.schema import Event, epoch

if TYPE_CHECKING:
    from edge.config import AppConfig

STORE_NAME = "edge-counts.sqlite3"
LATE = 10.0  # s a tick waits past an interval's end before closing it (frames lag the wall clock)
SAVE_EVERY = 1.0  # s: occupancy and up time reach the state file at most this often (crossings at once)


class CountProcessor:
    """Per camera: the open :class:`Tally`, the zones' current occupancy; the open crossings
    batch of the ``batched`` cameras (which need not be counted: ``counts.enabled: false``)."""

    def __init__(
        self,
        device: str,
        cameras: set[str],
        intervals: Intervals,
        store: CountStore | None = None,
        batched: set[str] | None = None,
        batch_seconds: float = BATCH_S,
    ) -> None:
        self.device, self.cameras, self.intervals, self.store = device, cameras, intervals, store
        self.batcher = Batcher(device, set(batched or ()), LATE, store, batch_seconds)
        self._open: dict[str, Tally] = {}
        self._occupancy: dict[str, dict[str, int]] = {c: {} for c in cameras}
        self._pending: dict[str, tuple[str, float]] = {}  # event id -> (camera, start): closed, not yet delivered
        self._resend: list[Event] = []  # closed intervals found in the state file at start
        self._dirty: set[str] = set()
        self._saved = 0.0
        self._lock = threading.Lock()
        if store is not None:
            self._restore(store)

    def _restore(self, store: CountStore) -> None:
        for camera, tally, closed in store.load():
            if closed:
                self._resend.append(self._closing(camera, tally))
            elif camera in self.cameras and camera not in self._open:
                self._open[camera] = tally  # occupancy starts at 0: the tracks ended with the process
            else:  # a camera removed from the config: its interval is as complete as it gets
                store.save(camera, tally, closed=True)
                self._resend.append(self._closing(camera, tally))

    # -- Processor ------------------------------------------------------------------------------

    def process(self, event: Event) -> list[Event]:
        """Count a ``line`` / ``zone`` event; returns ``count`` events of intervals it shows are over."""
        if event.type in ("count", "crossings"):
            self._delivered(event.id)
            return []
        if event.type not in ("line", "zone"):
            return []
        t = epoch(event.ts)
        with self._lock:
            out: list[Event] = []
            if event.type == "line" and event.camera in self.batcher.cameras:
                out += self.batcher.add(event, t)
            if event.camera not in self.cameras:
                return out
            out += self._advance(event.camera, t, t)
            tally = self._open[event.camera]
            occupancy = self._occupancy[event.camera]
            tally.observe(t, occupancy)
            if event.type == "line":
                line = event.attrs_as(LineAttrs)
                tally.crossing(line.line, line.dir, line.type or event.label or "unknown")
                self._save(event.camera)  # a crossing is never lost to a crash
            elif event.type == "zone" and event.phase in ("start", "end"):
                stay = event.attrs_as(ZoneAttrs)
                name = stay.zone
                occupancy[name] = stay.occupancy or 0
                zone = tally.zones.setdefault(name, ZoneTally())
                zone.peak = max(zone.peak, occupancy[name])
                if event.phase == "start":
                    zone.entries += 1
                else:
                    zone.dwell += stay.dwell or 0.0
                self._dirty.add(event.camera)
        return out

    def tick(self, now: float) -> list[Event]:
        """Close the intervals that ended ``LATE`` s ago (zeros too); write pending changes."""
        with self._lock:
            out, self._resend = self._resend, []
            out += self.batcher.tick(now)
            for camera in sorted(self.cameras):
                out += self._advance(camera, now - LATE, now)
                self._open[camera].observe(now, self._occupancy[camera])
                self._dirty.add(camera)
            if self.store is not None and time.monotonic() - self._saved >= SAVE_EVERY:
                for camera in sorted(self._dirty):
                    self._save(camera)
                self._dirty.clear()
                self._saved = time.monotonic()
        return out

    def close(self) -> list[Event]:
        """Shutdown: with a state file, write the open intervals (they go on after the restart);
        without one, emit them as they are (the last, partial interval of a replay)."""
        with self._lock:
            out = self.batcher.close()
            if self.store is not None:
                for camera in sorted(self._open):
                    self._save(camera)
                self.store.close()
                return out
            out += [t.event(self.device, c, t.last) for c, t in sorted(self._open.items()) if t.last is not None]
            self._open.clear()
            return out

    # -- helpers (lock held) --------------------------------------------------------------------

    def _advance(self, camera: str, t: float, seen: float) -> list[Event]:
        """Close the camera's intervals that end at or before ``t``; open the one holding ``t``.
        ``seen``: the observation time that goes with ``t`` (a tick's ``now``)."""
        out: list[Event] = []
        tally = self._open.get(camera)
        occupancy = self._occupancy[camera]
        while tally is not None and t >= tally.end:
            # running up to the end (not an outage that the first observation after it closes)
            running = tally.last is not None and min(seen, tally.end) - tally.last <= MAX_GAP
            tally.observe(min(seen, tally.end), occupancy)
            if self.store is not None:
                self.store.save(camera, tally, closed=True)
            out.append(self._closing(camera, tally))
            nxt = Tally(tally.end, self.intervals.end(tally.end))
            if t >= nxt.end or not running:  # an outage: no events for intervals nobody watched
                tally = None
                break
            nxt.last = tally.end
            nxt.observe(seen, occupancy, gap=LATE + MAX_GAP)  # the time since its start, up to LATE s
            tally = nxt
        if tally is None:  # the interval holding the newest observation (a tick's now, not now - LATE)
            start = self.intervals.start(seen)
            tally = Tally(start, self.intervals.end(start))
        if self._open.get(camera) is not tally:
            self._open[camera] = tally
            for name, n in self._occupancy[camera].items():  # who is still in a zone at the start
                if n:
                    tally.zones.setdefault(name, ZoneTally()).peak = n
            self._dirty.add(camera)
        return out

    def _closing(self, camera: str, tally: Tally) -> Event:
        event = tally.event(self.device, camera)
        if self.store is not None:
            self._pending[event.id] = (camera, tally.start)
        return event

    def _delivered(self, event_id: str) -> None:
        with self._lock:
            self.batcher.delivered(event_id)
            key = self._pending.pop(event_id, None)
            if key is not None and self.store is not None:
                self.store.delete(*key)

    def _save(self, camera: str) -> None:
        if self.store is not None and camera in self._open:
            self.store.save(camera, self._open[camera])


def build_counter(app: AppConfig, state_dir: Path | None, *, persist: bool = True) -> CountProcessor | None:
    """The count processor of ``app``: it counts the enabled cameras with a line or zone (none
    when ``counts.enabled`` is off) and batches the crossings of those at ``events.detail:
    crossings`` (None: nothing to do). Its state file is ``edge-counts.sqlite3`` in ``state_dir``
    (default: beside the outbox), none with ``persist=False``."""
    enabled = {n: c for n, c in app.cameras.items() if c.enabled}
    cameras = {n for n, c in enabled.items() if c.lines or c.zones} if app.counts.enabled else set()
    batched = {n for n, c in enabled.items() if c.lines and c.events.detail == BATCHED}
    if not cameras and not batched:
        return None
    intervals = Intervals(app.counts.interval_minutes, app.counts.timezone or app.rules.timezone)
    directory = state_dir if state_dir is not None else Path(app.outbox.path).parent
    store = CountStore(directory / STORE_NAME) if persist else None
    return CountProcessor(app.device_id, cameras, intervals, store, batched, app.counts.crossings_seconds)
