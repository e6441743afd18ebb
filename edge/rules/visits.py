"""Visits: an entry crossing opens one, an exit crossing on any camera of the device closes it.

Entry and exit pair up by plate (Levenshtein distance within ``plate_max_distance``, entry at
most ``match_window`` s old) or, on one camera, by the same track. Open visits are written to
the store on every change, so they survive restarts. Reads only events; emits changes that the
engine turns into ``visit`` events and shows to the rules.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from rapidfuzz.distance import Levenshtein

from edge.events.payloads import AnomalyAttrs, Described, LineAttrs, VisitAttrs, ZoneAttrs
from edge.events.schema import Event, new_event_id, utc_iso
from edge.rules.config import VisitsConfig
from edge.rules.store import Store

Status = Literal["open", "closed", "unresolved"]
MAX_EVIDENCE = 20
TRACK_CACHE = 4096  # (camera, track, start) -> latest plate/type, for crossings that lack them


@dataclass
class Visit:
    """One vehicle's stay on site."""

    id: str
    entry_camera: str
    time_in: float
    status: Status = "open"
    entry_track: int | None = None
    entry_track_start: str | None = None
    road_in: str | None = None
    exit_camera: str | None = None
    exit_track: int | None = None
    road_out: str | None = None
    time_out: float | None = None
    type: str | None = None
    color: str | None = None
    plate: str | None = None
    evidence: list[str] = field(default_factory=list)

    def duration(self, now: float | None = None) -> float | None:
        """Seconds from entry to exit (or to ``now`` while open)."""
        end = self.time_out if self.time_out is not None else now
        return None if end is None else round(end - self.time_in, 2)

    def attrs(self, now: float) -> dict[str, Any]:
        """The ``visit`` event attrs (docs/events.md); unknown fields left out."""
        a: dict[str, Any] = {
            "visit": self.id,
            "status": self.status,
            "entry_camera": self.entry_camera,
            "road_in": self.road_in,
            "time_in": utc_iso(self.time_in),
            "exit_camera": self.exit_camera,
            "road_out": self.road_out,
            "time_out": utc_iso(self.time_out) if self.time_out is not None else None,
            "type": self.type,
            "color": self.color,
            "plate": self.plate,
            "entry_track": self.entry_track,
            "exit_track": self.exit_track,
            "duration": self.duration(now) if self.status != "open" else None,
            "evidence": list(self.evidence),
        }
        return {k: v for k, v in a.items() if v is not None}


@dataclass(frozen=True)
class VisitChange:
    """A visit opened (start), changed (update) or ended (end), and the event that caused it."""

    phase: Literal["start", "update", "end"]
    visit: Visit
    cause: Event | None
    at: float

    def to_event(self) -> Event:
        """The ``visit`` event: the entry camera's, or the exit camera's when closed."""
        v = self.visit
        camera = v.exit_camera if self.phase == "end" and v.exit_camera else v.entry_camera
        track = v.exit_track if self.phase == "end" and v.exit_track is not None else v.entry_track
        return Event(
            device="", camera=camera, type="visit", phase=self.phase, ts=utc_iso(self.at), track=track,
            attrs=v.attrs(self.at),
        )  # fmt: skip


def crossing(ev: Event) -> Literal["entry", "exit"] | None:
    """Whether a line/zone event is an entry or exit crossing (None: neither)."""
    if ev.type == "line":
        line = ev.attrs_as(LineAttrs)
        if line.dir == "in" and line.role in ("entry", "both"):
            return "entry"
        if line.dir == "out" and line.role in ("exit", "both"):
            return "exit"
    elif ev.type == "zone" and ev.phase == "start":  # entering an entry or an exit zone
        role = ev.attrs_as(ZoneAttrs).role
        if role in ("entry", "exit"):
            return role
    return None


def road_of(ev: Event) -> str | None:
    """Where a crossing happened: the line's road, or the zone's name (None for other events)."""
    if ev.type == "line":
        return ev.attrs_as(LineAttrs).road
    if ev.type == "zone":
        return ev.attrs_as(ZoneAttrs).zone
    return None


def visit_of(ev: Event) -> str | None:
    """The visit a visit or anomaly event is about (None for other events)."""
    if ev.type == "visit":
        return ev.attrs_as(VisitAttrs).visit
    if ev.type == "anomaly":
        return ev.attrs_as(AnomalyAttrs).visit
    return None


def plate_of(ev: Event) -> str | None:
    """The event's ``plate``, else ``plate_hash`` (privacy mode), else None."""
    return ev.attrs_as(Described).plate_key()


class VisitBook:
    """Open visits, keyed by id, mirrored in the store."""

    def __init__(self, cfg: VisitsConfig, store: Store) -> None:
        self.cfg = cfg
        self.store = store
        self.open: dict[str, Visit] = {}
        fields = {f.name for f in dataclasses.fields(Visit)}
        for row in store.load_open("visits"):
            v = Visit(**{k: val for k, val in row.items() if k in fields})
            self.open[v.id] = v
        self._tracks: OrderedDict[tuple[str, int, str | None], dict[str, Any]] = OrderedDict()
        self.unmatched_exits = 0

    def handle(self, ev: Event, t: float) -> list[VisitChange]:
        """Entries, exits and plate/type news for open visits."""
        if not self.cfg.enabled:
            return []
        self._remember(ev)
        kind = crossing(ev)
        if kind == "entry":
            return self._entry(ev, t)
        if kind == "exit":
            return self._exit(ev, t)
        if ev.type in ("plate", "track") and ev.track is not None:
            return self._news(ev, t)
        return []

    def tick(self, now: float) -> list[VisitChange]:
        """Visits open longer than ``unresolved_after`` end as unresolved."""
        out = []
        for v in list(self.open.values()):
            if now - v.time_in >= self.cfg.unresolved_after:
                out.append(self._end(v, "unresolved", now))
        return out

    def _end(self, v: Visit, status: Status, t: float) -> VisitChange:
        """End an open visit without an exit (``unresolved``)."""
        v.status = status
        del self.open[v.id]
        self._save(v, t)
        return VisitChange("end", v, None, t)

    # --- internals -------------------------------------------------------------------------

    def _remember(self, ev: Event) -> None:
        if ev.track is None or ev.type not in ("track", "plate", "line", "zone"):
            return
        key = (ev.camera, ev.track, ev.start)  # start: track ids restart with the pipeline
        info = self._tracks.pop(key, {})
        seen = ev.attrs_as(Described)
        plate = seen.plate_key()
        if plate:
            info["plate"] = plate
        if seen.type:
            info["type"] = seen.type
        if seen.color:
            info["color"] = seen.color
        self._tracks[key] = info
        while len(self._tracks) > TRACK_CACHE:
            self._tracks.popitem(last=False)
        if ev.type == "track" and ev.phase == "end":
            self._tracks.pop(key, None)

    def _info(self, ev: Event) -> dict[str, Any]:
        info = dict(self._tracks.get((ev.camera, ev.track, ev.start), {})) if ev.track is not None else {}
        plate = plate_of(ev)
        if plate:
            info["plate"] = plate
        return info

    def _by_track(self, ev: Event) -> Visit | None:
        # Track ids restart with the pipeline: the track start time tells a new track 5 from an old one.
        for v in self.open.values():
            if v.entry_camera == ev.camera and v.entry_track == ev.track and ev.track is not None:
                if v.entry_track_start is None or ev.start is None or v.entry_track_start == ev.start:
                    return v
        return None

    def _by_plate(self, plate: str | None, t: float, window: float) -> Visit | None:
        if not plate:
            return None
        best: tuple[int, float, Visit] | None = None
        for v in self.open.values():
            if not v.plate or t - v.time_in > window or v.time_in > t + 5:
                continue
            d = Levenshtein.distance(plate, v.plate, score_cutoff=self.cfg.plate_max_distance)
            if d <= self.cfg.plate_max_distance and (best is None or (d, -v.time_in) < best[:2]):
                best = (d, -v.time_in, v)  # closest plate, then the latest entry
        return best[2] if best else None

    def _entry(self, ev: Event, t: float) -> list[VisitChange]:
        info = self._info(ev)
        same = self._by_track(ev) or self._by_plate(info.get("plate"), t, self.cfg.merge_window)
        if same is not None:  # the same vehicle crossing again or seen by a second entry camera
            return self._apply(same, ev, t, info)
        # The same plate entering again later: its previous visit missed its exit.
        stale = [v for v in self.open.values() if info.get("plate") and v.plate == info["plate"]]
        out = [self._end(v, "unresolved", t) for v in stale]
        v = Visit(
            id=new_event_id(), entry_camera=ev.camera, time_in=t, entry_track=ev.track, entry_track_start=ev.start,
            road_in=road_of(ev), type=info.get("type"), color=info.get("color"),
            plate=info.get("plate"), evidence=[ev.id],
        )  # fmt: skip
        self.open[v.id] = v
        self._save(v, t)
        return [*out, VisitChange("start", v, ev, t)]

    def _exit(self, ev: Event, t: float) -> list[VisitChange]:
        info = self._info(ev)
        v = self._by_track(ev) or self._by_plate(info.get("plate"), t, self.cfg.match_window)
        if v is None:
            self.unmatched_exits += 1
            return []
        v.status = "closed"
        v.exit_camera, v.exit_track, v.time_out = ev.camera, ev.track, t
        v.road_out = road_of(ev)
        v.type = v.type or info.get("type")
        v.color = v.color or info.get("color")
        v.plate = v.plate or info.get("plate")
        v.evidence = (v.evidence + [ev.id])[-MAX_EVIDENCE:]
        del self.open[v.id]
        self._save(v, t)
        return [VisitChange("end", v, ev, t)]

    def _news(self, ev: Event, t: float) -> list[VisitChange]:
        v = self._by_track(ev)
        return [] if v is None else self._apply(v, ev, t, self._info(ev))

    def _apply(self, v: Visit, ev: Event, t: float, info: dict[str, Any]) -> list[VisitChange]:
        """Later plate/type of the entry track (the plate consensus improves as it reads more)."""
        changed = False
        for k in ("plate", "type", "color"):
            new = info.get(k)
            if new and new != getattr(v, k):
                setattr(v, k, new)
                changed = True
        if not changed:
            return []
        v.evidence = (v.evidence + [ev.id])[-MAX_EVIDENCE:]
        self._save(v, t)
        return [VisitChange("update", v, ev, t)]

    def _save(self, v: Visit, t: float) -> None:
        # vars(), not dataclasses.asdict(): a shallow dict is all json needs, at a tenth of the cost
        self.store.put("visits", v.id, vars(v), is_open=v.status == "open", updated=t)
