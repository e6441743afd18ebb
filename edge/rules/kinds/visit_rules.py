"""Rules about visits: after_hours, wrong_road, overstay, no_exit_by."""

from __future__ import annotations

from datetime import datetime, timezone

from edge.events.payloads import Described
from edge.events.schema import Event
from edge.rules.config import AfterHoursRule, NoExitByRule, OverstayRule, WrongRoadRule
from edge.rules.kinds.base import Context, RuleKind, hhmm, what
from edge.rules.schedule import WeeklySchedule, local_deadline, parse_days
from edge.rules.visits import VisitChange, crossing, road_of


def _vsub(visit_id: str) -> str:
    return f"visit:{visit_id}"


class AfterHours(RuleKind[AfterHoursRule]):
    """An entry (``on: entry``) or a new track (``on: track``) outside opening hours."""

    kind = "after_hours"

    def __init__(self, cfg: AfterHoursRule, tz: str) -> None:
        super().__init__(cfg, tz)
        self.schedule: WeeklySchedule = cfg.open.build(tz)

    def _reason(self, who: str, how: str, t: float) -> str:
        return f"{who} {how} at {hhmm(self.schedule.local(t))}, after hours ({self.schedule.describe()})"

    def on_visit(self, change: VisitChange, ev: Event, ctx: Context) -> None:
        v = change.visit
        if self.cfg.on != "entry" or change.phase == "end":
            return
        subject = _vsub(v.id)
        if change.phase == "update" and not ctx.is_open(self.cfg, subject):
            return  # an update only refreshes the reason (type/plate now known)
        if self.schedule.is_open(v.time_in):
            return
        how = f"entered via {v.road_in}" if v.road_in else f"entered at {v.entry_camera}"
        reason = self._reason(what(v.type, v.plate), how, v.time_in)
        ctx.raise_(self.cfg, self.kind, subject, change.at, v.entry_camera, reason, visit=v.id,
                   track=v.entry_track, event=change.cause)  # fmt: skip

    def on_event(self, ev: Event, t: float, ctx: Context) -> None:
        if self.cfg.on == "track" and ev.type == "track" and ev.phase == "start":
            how = f"seen on {ev.camera}"
        elif self.cfg.on == "entry" and not ctx.visits_enabled and crossing(ev) == "entry":
            road = road_of(ev)  # no visits: the crossing itself
            how = f"entered via {road}" if road else f"entered at {ev.camera}"
        else:
            return
        if self.schedule.is_open(t):
            return
        seen = ev.attrs_as(Described)
        reason = self._reason(what(seen.type or ev.label, seen.plate), how, t)
        ctx.raise_(self.cfg, self.kind, f"track:{ev.camera}:{ev.track}", t, ev.camera, reason, event=ev)


class WrongRoad(RuleKind[WrongRoadRule]):
    """A closed visit whose (road in, road out) pair is not allowed (for its type)."""

    kind = "wrong_road"

    def on_visit(self, change: VisitChange, ev: Event, ctx: Context) -> None:
        v = change.visit
        if change.phase != "end" or v.status != "closed" or not v.road_in or not v.road_out:
            return
        table = self.cfg.by_type.get(v.type or "", self.cfg.allowed)
        allowed = table.get(v.road_in, [])
        if v.road_out in allowed:
            return
        also = f" for a {v.type}" if v.type in self.cfg.by_type else ""
        reason = (
            f"{what(v.type, v.plate)} entered via {v.road_in} and left via {v.road_out}; "
            f"allowed from {v.road_in}{also}: {', '.join(allowed) or 'none'}"
        )
        ctx.raise_(self.cfg, self.kind, _vsub(v.id), change.at, v.exit_camera or v.entry_camera, reason,
                   visit=v.id, track=v.exit_track, event=change.cause)  # fmt: skip


class Overstay(RuleKind[OverstayRule]):
    """A visit open longer than ``max_seconds`` (tick); resolves when the visit ends."""

    kind = "overstay"

    def on_tick(self, now: float, ctx: Context) -> None:
        for v in ctx.visits().values():
            if self.cfg.types and v.type not in self.cfg.types:
                continue
            if not self.cfg.applies_to(v.entry_camera):
                continue
            subject = _vsub(v.id)
            if now - v.time_in > self.cfg.max_seconds and not ctx.is_open(self.cfg, subject):
                mins = (now - v.time_in) / 60
                reason = (
                    f"{what(v.type, v.plate)} on site for {mins:.0f} min since "
                    f"{hhmm(datetime.fromtimestamp(v.time_in, timezone.utc).astimezone(self.tz))} "
                    f"(limit {self.cfg.max_seconds / 60:g} min)"
                )
                ctx.raise_(self.cfg, self.kind, subject, now, v.entry_camera, reason, visit=v.id, track=v.entry_track)

    def on_visit(self, change: VisitChange, ev: Event, ctx: Context) -> None:
        if change.phase == "end":
            ctx.clear(self.cfg, _vsub(change.visit.id), change.at)


class NoExitBy(RuleKind[NoExitByRule]):
    """A visit still open at the local ``deadline`` on one of ``days``; resolves when it ends."""

    kind = "no_exit_by"

    def __init__(self, cfg: NoExitByRule, tz: str) -> None:
        super().__init__(cfg, tz)
        self.days = set(parse_days(cfg.days))

    def on_tick(self, now: float, ctx: Context) -> None:
        local = datetime.fromtimestamp(now, timezone.utc).astimezone(self.tz)
        deadline = local_deadline(now, self.cfg.deadline, self.tz)
        if local.weekday() not in self.days or now < deadline:
            return
        for v in ctx.visits().values():
            subject = _vsub(v.id)
            if v.time_in < deadline and self.cfg.applies_to(v.entry_camera) and not ctx.is_open(self.cfg, subject):
                at = self.cfg.deadline.strftime("%H:%M")
                reason = f"{what(v.type, v.plate)} still on site at {at} {self.tz_name}"
                ctx.raise_(self.cfg, self.kind, subject, now, v.entry_camera, reason, visit=v.id, track=v.entry_track)

    def on_visit(self, change: VisitChange, ev: Event, ctx: Context) -> None:
        if change.phase == "end":
            ctx.clear(self.cfg, _vsub(change.visit.id), change.at)
