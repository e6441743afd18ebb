"""Errors of the toolchain: ``ConvertError`` is a user error (one line, exit 2), ``CheckFailed`` a
verification that did not pass (``--max-drop``: one line, exit 1)."""

from __future__ import annotations

from edge.errors import EdgeError


class ConvertError(EdgeError):
    """Bad input: unknown model, no manifest, wrong input shape, empty calibration set."""


class CheckFailed(Exception):
    """The converted model lost more accuracy than ``--max-drop`` allows."""
