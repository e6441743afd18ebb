"""Rules about zones: loitering, occupancy, type_not_allowed."""

from __future__ import annotations

from typing import Any

from edge.events.schema import Event
from edge.rules.config import LoiteringRule, OccupancyRule, TypeNotAllowedRule
from edge.rules.kinds.base import Context, RuleKind, what
from edge.rules.visits import VisitChange

MAX_TIMERS = 10_000  # zone stays being timed; a bound against leaks from lost end events


class Loitering(RuleKind[LoiteringRule]):
    """An object in a zone longer than ``max_seconds`` (tick, or its dwell on leaving)."""

    kind = "loitering"

    def __init__(self, cfg: LoiteringRule, tz: str) -> None:
        super().__init__(cfg, tz)
        self.inside: dict[tuple[str, str, int], tuple[float, Event]] = {}  # (camera, zone, track) -> entered

    def adopt(self, old: Any) -> None:
        self.inside = old.inside

    def _wanted(self, ev: Event) -> bool:
        z = ev.attrs.get("zone")
        if ev.track is None or not z or (self.cfg.zones and z not in self.cfg.zones):
            return False
        return not self.cfg.types or ev.attrs.get("type") in self.cfg.types

    def _raise(self, key: tuple[str, str, int], dwell: float, at: float, ev: Event, ctx: Context) -> None:
        camera, z, track = key
        who = what(ev.attrs.get("type") or ev.label)
        reason = f"{who} in zone {z} for {dwell:.0f} s (limit {self.cfg.max_seconds:g} s)"
        ctx.raise_(self.cfg, self.kind, f"zone:{camera}:{z}:{track}", at, camera, reason, track=track, event=ev)

    def on_event(self, ev: Event, t: float, ctx: Context) -> None:
        if ev.type == "track" and ev.phase == "end":  # track gone: stop timing it
            for key in [k for k in self.inside if k[0] == ev.camera and k[2] == ev.track]:
                del self.inside[key]
                ctx.clear(self.cfg, f"zone:{key[0]}:{key[1]}:{key[2]}", t)
            return
        if ev.type != "zone" or not self._wanted(ev):
            return
        assert ev.track is not None
        key = (ev.camera, str(ev.attrs["zone"]), ev.track)
        subject = f"zone:{key[0]}:{key[1]}:{key[2]}"
        if ev.phase == "start" and len(self.inside) < MAX_TIMERS:
            self.inside[key] = (t, ev)
        elif ev.phase == "end":
            entered = self.inside.pop(key, None)
            dwell = float(ev.attrs.get("dwell") or (t - entered[0] if entered else 0.0))
            if dwell > self.cfg.max_seconds and not ctx.is_open(self.cfg, subject):
                self._raise(key, dwell, t, ev, ctx)  # missed by tick (no ticks, or a short gap)
            ctx.clear(self.cfg, subject, t)

    def on_tick(self, now: float, ctx: Context) -> None:
        timed = set()
        for key, (since, ev) in self.inside.items():
            subject = f"zone:{key[0]}:{key[1]}:{key[2]}"
            timed.add(subject)
            if now - since > self.cfg.max_seconds and not ctx.is_open(self.cfg, subject):
                self._raise(key, now - since, now, ev, ctx)
        # An open anomaly for a stay no longer timed (a restart: the old track ids are gone) can
        # never clear by itself: resolve it.
        for rule, subject in list(ctx.anomalies.by_key):
            if rule == self.cfg.id and subject not in timed:
                ctx.clear(self.cfg, subject, now)


class Occupancy(RuleKind[OccupancyRule]):
    """More objects in a zone than its ``capacity``; resolves when it drops back."""

    kind = "occupancy"

    def on_event(self, ev: Event, t: float, ctx: Context) -> None:
        if ev.type != "zone" or ev.attrs.get("zone") != self.cfg.zone or ev.attrs.get("occupancy") is None:
            return
        occ = int(ev.attrs["occupancy"])
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
        z, vtype = ev.attrs.get("zone"), ev.attrs.get("type")
        if vtype not in self.cfg.types or (self.cfg.zones and z not in self.cfg.zones):
            return
        reason = f"{what(vtype, ev.attrs.get('plate'))} entered zone {z} on {ev.camera}; {vtype} not allowed"
        ctx.raise_(self.cfg, self.kind, f"zone:{ev.camera}:{z}:{ev.track}", t, ev.camera, reason, event=ev)

    def on_visit(self, change: VisitChange, ev: Event, ctx: Context) -> None:
        v = change.visit
        if self.cfg.where == "zone" or change.phase == "end" or v.type not in self.cfg.types:
            return
        via = f" via {v.road_in}" if v.road_in else ""
        reason = f"{what(v.type, v.plate)} entered{via} at {v.entry_camera}; {v.type} not allowed on site"
        ctx.raise_(self.cfg, self.kind, f"visit:{v.id}", change.at, v.entry_camera, reason, visit=v.id,
                   track=v.entry_track, event=change.cause)  # fmt: skip
