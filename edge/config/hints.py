"""Hints for a misspelt config key: "did you mean ...?".

pydantic reports an unknown key as ``Extra inputs are not permitted`` at its field path; the
names that would have been accepted there are the fields of the model that path leads to.
:func:`did_you_mean` walks the model's type annotations along the path (through ``Optional``,
``Annotated``, ``dict[..., X]``, ``list[X]`` and ``kind``-discriminated unions) and offers the
closest field name.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

# A key longer than this is no misspelling of a field name (and difflib on a megabyte key is slow).
_MAX_KEY = 64


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _names(model: type[BaseModel]) -> list[str]:
    """The keys a model accepts: field names and their aliases."""
    names = []
    for name, field in model.model_fields.items():
        names.append(field.alias or name)
        if field.alias and field.alias != name and model.model_config.get("populate_by_name"):
            names.append(name)
    return names


def _tags(model: type[BaseModel]) -> set[Any]:
    """The ``Literal`` values of a model's fields (a discriminated union puts the tag in the path)."""
    literals = [f.annotation for f in model.model_fields.values() if get_origin(f.annotation) is Literal]
    return {v for tp in literals for v in get_args(tp)}


def _step(tp: Any, part: int | str) -> tuple[Any, bool] | None:
    """The type one path element below ``tp`` and whether ``part`` was consumed; None: unknown."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return get_args(tp)[0], False
    if origin is Union or origin is types.UnionType:
        members = [m for m in get_args(tp) if m is not type(None)]
        if len(members) == 1:
            return members[0], False
        tagged = [m for m in members if _is_model(m) and part in _tags(m)]
        return (tagged[0], True) if len(tagged) == 1 else None
    if origin is dict:
        return get_args(tp)[1], True
    if origin is list and isinstance(part, int):
        return get_args(tp)[0], True
    if _is_model(tp) and isinstance(part, str):
        for name, field in tp.model_fields.items():
            if part in (name, field.alias):
                return field.annotation, True
    return None


def fields_at(model: type[BaseModel], path: tuple[int | str, ...]) -> list[str] | None:
    """The keys accepted in the mapping at ``path`` of ``model``; None when that is not a model."""
    tp: Any = model
    parts = list(path)
    while parts:  # each step consumes a part or unwraps one layer of the type: it ends
        step = _step(tp, parts[0])
        if step is None:
            return None
        tp, consumed = step
        if consumed:
            parts.pop(0)
    while not _is_model(tp):  # Optional/Annotated around the last model
        step = _step(tp, "")
        if step is None or step[1]:
            return None
        tp = step[0]
    return _names(tp)


def did_you_mean(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    """The field name closest to the unknown key at the end of ``loc`` (an ``extra_forbidden``
    error's location), or None when nothing is close."""
    if not loc or not isinstance(loc[-1], str) or len(loc[-1]) > _MAX_KEY:
        return None
    names = fields_at(model, loc[:-1])
    if not names:
        return None
    key = loc[-1]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if not close:  # "Cameras", "FPS": case is a typo too
        lowered = {n.lower(): n for n in names}
        close = [lowered[m] for m in difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.6)]
    return close[0] if close else None
