"""Help text for the toolchain's commands (shared by ``convert.cli`` and the commands it dispatches to)."""

from __future__ import annotations

import re


def plain_help(doc: str | None) -> str:
    """A docstring as terminal help text: reST/Markdown markup (````x````, ```x```, ``:func:`x```)
    becomes plain ``x``; whitespace runs become single spaces (argparse wraps the text itself)."""
    text = re.sub(r":\w+:`([^`]*)`", r"\1", doc or "")
    text = re.sub(r"`{1,2}([^`]*)`{1,2}", r"\1", text)
    return " ".join(text.split())
