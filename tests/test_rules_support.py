"""Events built by hand the way the pipeline and geometry stages emit them, for rule tests."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge.clock import ManualClock
from edge.events.schema import Event, utc_iso
from edge.rules import RuleEngine, RulesConfig

JNB = ZoneInfo("Africa/Johannesburg")


def at(text: str, tz: ZoneInfo = JNB) -> float:
    """``2026-11-23 19:07`` local (a Monday) -> epoch seconds."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=tz).timestamp()


def ev(type_: str, t: float, camera: str = "gate", track: int | None = 1, phase: str | None = None, **kw: Any) -> Event:
    """One event at time ``t``; ``start`` is the same fake track start for every event of a track."""
    start = utc_iso(1_000_000 + (track or 0))
    fields: dict[str, Any] = {"label": "vehicle", "box": [0.1, 0.1, 0.5, 0.5], "start": start}
    fields.update({k: v for k, v in kw.items() if k in ("label", "box", "start", "zones")})
    attrs = {k: v for k, v in kw.items() if k not in fields and v is not None}
    if track is None:
        fields.pop("start")
    return Event(device="edge-1", camera=camera, type=type_, phase=phase, ts=utc_iso(t), track=track,  # type: ignore[arg-type]
                 attrs=attrs, **fields)  # fmt: skip


def line(t: float, dir_: str, role: str = "both", road: str | None = "A", **kw: Any) -> Event:
    """A line crossing (``dir`` in/out) on a line with ``role``."""
    return ev("line", t, line=kw.pop("line_name", "gate-line"), dir=dir_, role=role, road=road, **kw)


def plate(t: float, text: str, **kw: Any) -> Event:
    """A plate read (``list``: allow/watch when on a list)."""
    return ev("plate", t, phase=kw.pop("phase", "start"), plate=text, conf=0.9, **kw)


def state(t: float, label: str, phase: str, camera: str = "rank", since: float | None = None) -> Event:
    """A frame-classifier state change (no track)."""
    return ev("state", t, camera=camera, track=None, phase=phase, label=label, box=None,
              start=utc_iso(since if since is not None else t))  # fmt: skip


def engine(rules: Any = (), *, store: Path | None = None, start: float = 0.0, **cfg: Any) -> RuleEngine:
    """An engine over ``rules`` (a list of rule dicts) with a manual clock."""
    data = {"rules": list(rules), **cfg}
    return RuleEngine(RulesConfig.model_validate(data), store_path=store, clock=ManualClock(start))


def of(events: list[Event], type_: str, phase: str | None = None) -> list[Event]:
    """The events of one type (and phase)."""
    return [e for e in events if e.type == type_ and (phase is None or e.phase == phase)]
