"""Rule kinds: one class per ``kind``, built from its config."""

from __future__ import annotations

from typing import Any

from edge.rules.kinds.base import Context, RuleKind
from edge.rules.kinds.condition_rule import ConditionKind
from edge.rules.kinds.signal_rules import PlateWatch, StateHeld
from edge.rules.kinds.visit_rules import AfterHours, NoExitBy, Overstay, WrongRoad
from edge.rules.kinds.zone_rules import Loitering, Occupancy, TypeNotAllowed

KINDS: dict[str, type[RuleKind[Any]]] = {
    k.kind: k
    for k in (AfterHours, WrongRoad, Overstay, NoExitBy, Loitering, Occupancy, TypeNotAllowed, PlateWatch, StateHeld,
              ConditionKind)  # fmt: skip
}


def build(cfg: Any, tz: str) -> RuleKind[Any]:
    """The rule object for one validated rule config."""
    return KINDS[cfg.kind](cfg, tz)


__all__ = ["KINDS", "Context", "RuleKind", "build"]
