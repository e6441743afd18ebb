"""Field paths and one-line problem messages: ``cameras.gate.detect.fps: ...``, with keys from
the file shortened and redacted, and a "did you mean" hint for a misspelt key."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from edge.config.hints import did_you_mean
from edge.redact import redact_text


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut for an error message (keys can be megabytes long in a broken file)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def path_part(key: Any) -> str:
    """One key of a field path as it appears in a message: short, redacted, quoted when odd."""
    # Keys come from the file: keep them one short line in messages, without credentials (a
    # misplaced colon can turn "rtsp://user:pass@host" into a key).
    text = redact_text(key if isinstance(key, str) else repr(key))
    if not re.fullmatch(r"#?[A-Za-z0-9_-]+", text):  # "#3": a list item without a name (rules)
        text = repr(shorten(text))
    return shorten(text)


def field_path(parts: tuple[int | str, ...]) -> str:
    """``("cameras", "gate", "zones", 0)`` -> ``cameras.gate.zones[0]`` (``<root>`` when empty)."""
    loc = ""
    for part in parts:
        loc += f"[{part}]" if isinstance(part, int) else (f".{path_part(part)}" if loc else path_part(part))
    return loc or "<root>"


def format_validation_error(err: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """One line per problem: ``field.path: message``. Input values are left out (may be secrets).
    Given the validated ``model``, an unknown key gets the closest field name as a hint."""
    lines = []
    for e in err.errors(include_input=False, include_url=False):
        line = f"{field_path(e['loc'])}: {e['msg']}"
        hint = did_you_mean(model, e["loc"]) if model is not None and e["type"] == "extra_forbidden" else None
        lines.append(f"{line} (did you mean '{hint}'?)" if hint else line)
    return lines
