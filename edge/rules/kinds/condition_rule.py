"""The generic ``condition`` kind: a test tree over any event's fields."""

from __future__ import annotations

import re
from typing import Any

from edge.events.schema import Event
from edge.rules.condition import _MISSING, get_path, matches
from edge.rules.config import ConditionRule
from edge.rules.kinds.base import Context, RuleKind
from edge.rules.schedule import WeeklySchedule
from edge.rules.visits import VisitChange, plate_of, visit_of

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.]+)\}")


class ConditionKind(RuleKind[ConditionRule]):
    """Raises when ``when`` matches an event of the wanted types, inside ``schedule``."""

    kind = "condition"

    def __init__(self, cfg: ConditionRule, tz: str) -> None:
        super().__init__(cfg, tz)
        self.schedule: WeeklySchedule | None = cfg.schedule.build(tz) if cfg.schedule else None

    def _subject(self, ev: Event) -> str:
        s = self.cfg.subject
        visit, plate = visit_of(ev), plate_of(ev)
        if s == "visit" and visit:
            return f"visit:{visit}"
        if s == "plate" and plate:
            return f"plate:{plate}"
        if s == "camera":
            return f"camera:{ev.camera}"
        if s == "track" and ev.track is not None:
            return f"track:{ev.camera}:{ev.track}"
        return f"event:{ev.id}"  # the subject is unknown on this event: each match stands alone

    def _reason(self, data: dict[str, Any], ev: Event) -> str:
        if not self.cfg.reason:
            return f"{self.cfg.id}: {ev.type} event on {ev.camera} matched"

        def fill(m: re.Match[str]) -> str:
            v = get_path(data, m.group(1))
            return "?" if v is _MISSING or v is None else str(v)

        return _PLACEHOLDER.sub(fill, self.cfg.reason)

    def _check(self, ev: Event, t: float, ctx: Context) -> None:
        types = self.cfg.event_types
        if (types and ev.type not in types) or (not types and ev.type == "anomaly"):
            return
        if self.cfg.phases and (ev.phase or "") not in self.cfg.phases:
            return
        if self.schedule is not None and not self.schedule.is_open(t):
            return
        data = ev.model_dump()
        if matches(self.cfg.when, data):
            ctx.raise_(self.cfg, self.kind, self._subject(ev), t, ev.camera, self._reason(data, ev),
                       visit=visit_of(ev) if ev.type == "visit" else None, event=ev)  # fmt: skip

    def on_event(self, ev: Event, t: float, ctx: Context) -> None:
        self._check(ev, t, ctx)

    def on_visit(self, change: VisitChange, ev: Event, ctx: Context) -> None:
        self._check(ev, change.at, ctx)
