"""Rules on single pipeline signals: plate_watch, state_held."""

from __future__ import annotations

from typing import Any

from edge.events.payloads import PlateAttrs
from edge.events.schema import Event, epoch
from edge.rules.config import PlateWatchRule, StateHeldRule
from edge.rules.kinds.base import Context, RuleKind, what


class PlateWatch(RuleKind[PlateWatchRule]):
    """A plate on the watch list: one anomaly per plate while it is open (any camera)."""

    kind = "plate_watch"

    def on_event(self, ev: Event, t: float, ctx: Context) -> None:
        if ev.type != "plate":
            return
        read = ev.attrs_as(PlateAttrs)
        if read.on_list != self.cfg.list:
            return
        plate = read.plate_key() or "?"
        reason = f"{self.cfg.list}-listed plate {plate} ({what(read.type)}) seen on {ev.camera}"
        ctx.raise_(self.cfg, self.kind, f"plate:{plate}", t, ev.camera, reason, event=ev)


class StateHeld(RuleKind[StateHeldRule]):
    """A classifier state held longer than ``minutes``; resolves when the state ends."""

    kind = "state_held"

    def __init__(self, cfg: StateHeldRule, tz: str) -> None:
        super().__init__(cfg, tz)
        self.since: dict[str, tuple[float, Event]] = {}  # camera -> when the state began

    def adopt(self, old: Any) -> None:
        self.since = old.since

    def _label(self, ev: Event) -> str | None:
        return ev.label  # the class; state events carry no label in attrs

    def on_event(self, ev: Event, t: float, ctx: Context) -> None:
        if ev.type != "state":
            return
        subject = f"state:{ev.camera}:{self.cfg.label}"
        label = self._label(ev)
        if label == self.cfg.label and ev.phase == "start":
            began = epoch(ev.start) if ev.start else t
            self.since.setdefault(ev.camera, (began, ev))
        elif (label == self.cfg.label and ev.phase == "end") or (label != self.cfg.label and ev.phase == "start"):
            self.since.pop(ev.camera, None)
            ctx.clear(self.cfg, subject, t)

    def on_tick(self, now: float, ctx: Context) -> None:
        for camera, (since, ev) in self.since.items():
            subject = f"state:{camera}:{self.cfg.label}"
            if now - since > self.cfg.minutes * 60 and not ctx.is_open(self.cfg, subject):
                reason = (
                    f"state {self.cfg.label} held for {(now - since) / 60:.0f} min on {camera} "
                    f"(limit {self.cfg.minutes:g} min)"
                )
                ctx.raise_(self.cfg, self.kind, subject, now, camera, reason, event=ev)
