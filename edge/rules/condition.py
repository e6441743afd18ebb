"""The generic condition: all/any/not over dotted event fields (``attrs.type``, ``camera``)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from edge.rules.config import Condition
from edge.rules.regex_guard import check_pattern, search

_MISSING = object()


def get_path(data: dict[str, Any], path: str) -> Any:
    """``attrs.type`` -> data["attrs"]["type"]; a missing step gives the _MISSING marker."""
    cur: Any = data
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return check_pattern(pattern)  # validated when the config loaded; cached here


def matches(cond: Condition, data: dict[str, Any]) -> bool:
    """Evaluate ``cond`` on an event dict. A missing field fails every test but ``ne``/``not_in``.

    Type errors (``gt`` on a string) propagate: the engine counts them as the rule's errors.
    """
    if cond.all is not None:
        return all(matches(c, data) for c in cond.all)
    if cond.any is not None:
        return any(matches(c, data) for c in cond.any)
    if cond.not_ is not None:
        return not matches(cond.not_, data)
    assert cond.field is not None
    v = get_path(data, cond.field)
    op, want = cond.op, cond.value
    if op == "exists":
        return (v is not _MISSING and v is not None) == (want is None or bool(want))
    if v is _MISSING:
        return op in ("ne", "not_in")
    if op == "eq":
        return bool(v == want)
    if op == "ne":
        return bool(v != want)
    if op == "in":
        return v in want
    if op == "not_in":
        return v not in want
    if op == "gt":
        return bool(v > want)
    if op == "ge":
        return bool(v >= want)
    if op == "lt":
        return bool(v < want)
    if op == "le":
        return bool(v <= want)
    if op == "regex":
        if not isinstance(v, str):
            raise TypeError(f"regex on {cond.field} needs a string, got {type(v).__name__}")
        return search(_regex(str(want)), v)  # bounded: the first MAX_TEXT characters
    raise ValueError(f"unknown op {op}")
