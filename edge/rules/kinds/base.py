"""What every rule kind implements, and the context it reports anomalies through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from edge.events.schema import Event
from edge.rules.anomalies import AnomalyBook, Raise
from edge.rules.config import RuleBase
from edge.rules.schedule import zone
from edge.rules.visits import Visit, VisitChange

C = TypeVar("C", bound=RuleBase)


class Context:
    """Handed to rules on every call: raise/clear anomalies, read open visits. Collects events."""

    def __init__(
        self, anomalies: AnomalyBook, visits: Callable[[], dict[str, Visit]], visits_enabled: bool = True
    ) -> None:
        self.anomalies = anomalies
        self._visits = visits
        self.visits_enabled = visits_enabled
        self.out: list[Event] = []

    def visits(self) -> dict[str, Visit]:
        """Open visits by id."""
        return self._visits()

    def raise_(
        self,
        rule: RuleBase,
        kind: str,
        subject: str,
        at: float,
        camera: str,
        reason: str,
        *,
        visit: str | None = None,
        track: int | None = None,
        event: Event | None = None,
    ) -> None:
        """Raise (or update) the anomaly of (rule, subject); ``event`` is the evidence."""
        r = Raise(
            rule=rule.id, kind=kind, severity=rule.severity, subject=subject, camera=camera, reason=reason,
            visit=visit, track=track if track is not None else (event.track if event else None),
            evidence=event.id if event else None, snapshot=event.id if event is not None and event.box else None,
        )  # fmt: skip
        self.out += self.anomalies.raise_(r, at, rule.cooldown)

    def clear(self, rule: RuleBase, subject: str, at: float) -> None:
        """The condition cleared: resolve (rule, subject) if open."""
        self.out += self.anomalies.clear(rule.id, subject, at)

    def is_open(self, rule: RuleBase, subject: str) -> bool:
        """Whether (rule, subject) has an open anomaly."""
        return self.anomalies.is_open(rule.id, subject)


class RuleKind(Generic[C]):
    """Base: each hook does nothing unless a kind overrides it."""

    kind = ""

    def __init__(self, cfg: C, tz: str) -> None:
        self.cfg = cfg
        self.tz_name = tz
        self.tz = zone(tz)

    def on_event(self, ev: Event, t: float, ctx: Context) -> None:
        """A pipeline event (not visit/anomaly) of a camera the rule applies to."""

    def on_visit(self, change: VisitChange, ev: Event, ctx: Context) -> None:
        """A visit opened, changed or ended (``ev`` is its visit event)."""

    def on_tick(self, now: float, ctx: Context) -> None:
        """Time passes."""

    def adopt(self, old: Any) -> None:
        """Take over an older instance's timers on reload (same id and kind)."""


def hhmm(dt: Any) -> str:
    """``19:07``."""
    return f"{dt.hour:02d}:{dt.minute:02d}"


def what(vtype: str | None, plate: str | None = None) -> str:
    """``truck CA123456`` / ``vehicle``: the subject of a reason sentence."""
    return " ".join(x for x in (vtype or "vehicle", plate) if x)
