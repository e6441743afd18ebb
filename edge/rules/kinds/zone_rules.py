"""Rules about zones: loitering, occupancy, type_not_allowed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from edge.events.payloads import Described, ZoneAttrs
from edge.events.schema import Event
from edge.rules.config import LoiteringRule, OccupancyRule, TypeNotAllowedRule
from edge.rules.kinds.base import Context, RuleKind, what
from edge.rules.visits import VisitChange

MAX_TIMERS = 10_000  # zone stays being timed; a bound against leaks from lost end events


@dataclass
class _Stay:
    """One object's stay in one zone, in event time: when it entered and when it was last seen there."""

    entered: float
    seen: float


def _seconds(s: float) -> str:
    """``2.6`` / ``121``: rounded down, so a reason never claims a longer stay than was seen."""
    return f"{math.floor(s * 10) / 10:.1f}".removesuffix(".0")


class Loitering(RuleKind[LoiteringRule]):
    """An object seen in a zone longer than ``max_seconds`` after it entered.

    Judged only on sightings (the object's ``track`` start/update events and zone events, each at
    the time the object was seen), never on the clock: a track that coasts after its last
    detection, or an object that left without its end reported yet, is not timed past its last
    sighting, so no anomaly is raised after the object left."""

    kind = "loitering"

    def __init__(self, cfg: LoiteringRule, tz: str) -> None:
        super().__init__(cfg, tz)
        self.inside: dict[tuple[str, str, int], _Stay] = {}  # (camera, zone, track) -> stay

    def adopt(self, old: Any) -> None:
        self.inside = old.inside

    def _zone_wanted(self, z: str) -> bool:
        return not self.cfg.zones or z in self.cfg.zones

    def _judge(self, key: tuple[str, str, int], ev: Event, dwell: float, at: float, ctx: Context) -> None:
        """Raise when ``dwell`` (entered -> the sighting ``ev`` at ``at``) is over the limit."""
        camera, z, track = key
        subject = f"zone:{camera}:{z}:{track}"
        vtype = ev.attrs_as(Described).type
        if dwell <= self.cfg.max_seconds or ctx.is_open(self.cfg, subject):
            return
        if self.cfg.types and vtype not in self.cfg.types:
            return
        reason = f"{what(vtype or ev.label)} in zone {z} for {_seconds(dwell)} s (limit {self.cfg.max_seconds:g} s)"
        ctx.raise_(self.cfg, self.kind, subject, at, camera, reason, track=track, event=ev)

    def on_event(self, ev: Event, t: float, ctx: Context) -> None:
        if ev.track is None or ev.type not in ("track", "zone"):
            return
        if ev.type == "track" and ev.phase == "end":  # track gone (its zone ends came first)
            for key in [k for k in self.inside if k[0] == ev.camera and k[2] == ev.track]:
                del self.inside[key]
                ctx.clear(self.cfg, f"zone:{key[0]}:{key[1]}:{key[2]}", t)
            return
        zone = ev.attrs_as(ZoneAttrs) if ev.type == "zone" else None
        if zone is not None and self._zone_wanted(zone.zone):
            key = (ev.camera, zone.zone, ev.track)
            if ev.phase == "start" and len(self.inside) < MAX_TIMERS:
                self.inside[key] = _Stay(t, t)
                return
            if ev.phase == "end":
                stay = self.inside.pop(key, None)
                # the pipeline's dwell runs to the last sighting (t), never through coasting; it
                # also judges stays whose start this instance never saw (a restart)
                dwell = zone.dwell
                if dwell is None and stay is not None:
                    dwell = t - stay.entered
                if dwell is not None:
                    self._judge(key, ev, float(dwell), t, ctx)
                ctx.clear(self.cfg, f"zone:{key[0]}:{key[1]}:{key[2]}", t)
                return
        if ev.phase not in ("start", "update"):
            return
        for z in ev.zones:  # a sighting of the object: still in these zones at t
            key = (ev.camera, z, ev.track)
            stay = self.inside.get(key)
            if stay is not None and t > stay.seen:
                stay.seen = t
                self._judge(key, ev, t - stay.entered, t, ctx)

    def on_tick(self, now: float, ctx: Context) -> None:
        # An open anomaly for a stay no longer timed (a restart: the old track ids are gone) can
        # never clear by itself: resolve it.
        timed = {f"zone:{k[0]}:{k[1]}:{k[2]}" for k in self.inside}
        for rule, subject in list(ctx.anomalies.by_key):
            if rule == self.cfg.id and subject not in timed:
                ctx.clear(self.cfg, subject, now)


class Occupancy(RuleKind[OccupancyRule]):
    """More objects in a zone than its ``capacity``; resolves when it drops back."""

    kind = "occupancy"

    def on_event(self, ev: Event, t: float, ctx: Context) -> None:
        if ev.type != "zone":
            return
        zone = ev.attrs_as(ZoneAttrs)
        if zone.zone != self.cfg.zone or zone.occupancy is None:
            return
        occ = zone.occupancy
        subject = f"zone:{ev.camera}:{self.cfg.zone}"
        if occ > self.cfg.capacity:
            reason = f"{occ} objects in zone {self.cfg.zone} on {ev.camera} (capacity {self.cfg.capacity})"
            if not ctx.is_open(self.cfg, subject) or ev.phase == "start":
                ctx.raise_(self.cfg, self.kind, subject, t, ev.camera, reason, event=ev)
        else:
            ctx.clear(self.cfg, subject, t)


class TypeNotAllowed(RuleKind[TypeNotAllowedRule]):
    """A vehicle type that may not enter a zone or the site."""

    kind = "type_not_allowed"

    def on_event(self, ev: Event, t: float, ctx: Context) -> None:
        if self.cfg.where == "visit" or ev.type != "zone" or ev.phase != "start" or ev.track is None:
            return
        zone = ev.attrs_as(ZoneAttrs)
        z, vtype = zone.zone, zone.type
        if vtype not in self.cfg.types or (self.cfg.zones and z not in self.cfg.zones):
            return
        reason = f"{what(vtype, zone.plate)} entered zone {z} on {ev.camera}; {vtype} not allowed"
        ctx.raise_(self.cfg, self.kind, f"zone:{ev.camera}:{z}:{ev.track}", t, ev.camera, reason, event=ev)

    def on_visit(self, change: VisitChange, ev: Event, ctx: Context) -> None:
        v = change.visit
        if self.cfg.where == "zone" or change.phase == "end" or v.type not in self.cfg.types:
            return
        via = f" via {v.road_in}" if v.road_in else ""
        reason = f"{what(v.type, v.plate)} entered{via} at {v.entry_camera}; {v.type} not allowed on site"
        ctx.raise_(self.cfg, self.kind, f"visit:{v.id}", change.at, v.entry_camera, reason, visit=v.id,
                   track=v.entry_track, event=change.cause)  # fmt: skip
