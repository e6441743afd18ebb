"""One clear line for a live camera that ffmpeg could not open.

ffmpeg's last error line is often generic: ``Input/output error`` after a failed host name
lookup, ``Invalid data found when processing input`` when what answered on that port is not an
RTSP server (another service, or a proxy/firewall answering for a host it cannot reach). The
line that says what happened comes earlier, or not at all; :func:`describe_open_failure` reads
them all and says "cannot connect to URL: why" when the camera could not be reached, naming
the URL as ``Source.display`` gives it (credentials masked).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from edge.sources.kinds import SourceKind
from edge.sources.url import Source

_RESOLVE = re.compile(r"Failed to resolve hostname (?P<host>\S+?):? (?P<why>.+)$")
_CONNECT = re.compile(r"Connection to \S+ failed: (?P<why>.+)$")
# errno texts of a connection that never came up (strerror, as ffmpeg prints them)
_NETWORK = ("Connection refused", "Connection timed out", "No route to host", "Network is unreachable",
            "Host is unreachable", "Connection reset by peer")  # fmt: skip
_NOT_RTSP = "Invalid data found when processing input"


def _connect_problem(source: Source, lines: Sequence[str]) -> str | None:
    """Why the connection itself failed, from ffmpeg's error lines; None if it did not."""
    for line in lines:
        if m := _RESOLVE.search(line):
            return f"host name {m['host']} not found ({m['why']})"
    for line in lines:
        if m := _CONNECT.search(line):
            return m["why"]
    last = lines[-1] if lines else ""
    for text in _NETWORK:
        if last.endswith(text):
            return text
    if source.kind is SourceKind.RTSP and last.endswith(_NOT_RTSP):
        return f"what answered is not an RTSP server (ffmpeg: {_NOT_RTSP}); check the host and port"
    return None


def describe_open_failure(source: Source, lines: Sequence[str], reason: str) -> str:
    """The one-line error for a live ``source`` whose stream did not open.

    ``lines`` are ffmpeg's (redacted) error lines without their ``[module @ 0x..]`` prefix,
    ``reason`` the short form of the last one (``FFmpegCapture.end_reason``).
    """
    problem = _connect_problem(source, lines)
    if problem is not None:
        return f"cannot connect to {source.display}: {problem}"
    return f"cannot open {source.display}: {reason}"
