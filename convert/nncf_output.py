"""Keep NNCF quiet when ``edge convert -q`` (or a first-pull build in the appliance) asks for it.

NNCF ignores the application's logging setup: on import its ``nncf`` logger gets its own
handler that prints INFO lines to stdout (``propagate`` off), and its progress bars are drawn
by rich's global console, also on stdout. In a first-pull build inside ``edge demo --json`` or
``edge replay`` that is noise mixed into the command's output. :func:`quiet_nncf` raises NNCF's
logger to WARNING, sends what remains to stderr and silences the bars, for the duration only.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

NNCF_LOGGER = "nncf"


def _swap_stream(handler: logging.StreamHandler, stream: object) -> None:
    # not setStream(): it flushes the old stream, which may be closed by now (a test's captured stdout)
    handler.acquire()
    try:
        handler.stream = stream
    finally:
        handler.release()


@contextmanager
def quiet_nncf() -> Iterator[None]:
    """NNCF's INFO lines and progress bars off (warnings and errors on stderr) inside the block."""
    import nncf  # noqa: F401 - importing it installs the logger's handler that is adjusted here
    from rich import get_console

    logger = logging.getLogger(NNCF_LOGGER)
    console = get_console()  # the one rich Progress draws on when not given a console (NNCF's case)
    saved_level, saved_quiet = logger.level, console.quiet
    saved: list[tuple[logging.Handler, int, object]] = []
    for handler in logger.handlers:
        stream = getattr(handler, "stream", None)
        saved.append((handler, handler.level, stream))
        handler.setLevel(logging.WARNING)
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            _swap_stream(handler, sys.stderr)  # NNCF's own handler holds the stdout of its import time
    logger.setLevel(logging.WARNING)
    console.quiet = True
    try:
        yield
    finally:
        logger.setLevel(saved_level)
        console.quiet = saved_quiet
        for handler, level, stream in saved:
            handler.setLevel(level)
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                _swap_stream(handler, stream)
