"""Classify a camera ``url`` into the kind of source it names."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote, urlsplit

from edge.errors import SourceError
from edge.redact import encode_credentials, redact_text, redact_url, register_url, split_userinfo


class SourceKind(str, Enum):
    """How a source is read."""

    RTSP = "rtsp"
    HTTP = "http"
    FILE = "file"
    DEVICE = "device"


@dataclass(frozen=True)
class Source:
    """A parsed camera location: ``location`` is the URL (network) or a filesystem path."""

    kind: SourceKind
    location: str

    @property
    def live(self) -> bool:
        """Live sources are read at their own pace and reconnected; files are not."""
        return self.kind is not SourceKind.FILE

    @property
    def display(self) -> str:
        """The location with credentials replaced by ``***``, safe for logs and errors.

        ``redact_url`` parses the URL (robust to odd passwords); ``redact_text`` then gives the
        same ``scheme://***@host`` form that free-text redaction of error messages produces.
        """
        return redact_text(redact_url(self.location))

    @property
    def has_credentials(self) -> bool:
        """True when the URL carries a user name or password."""
        return self.kind in (SourceKind.RTSP, SourceKind.HTTP) and split_userinfo(self.location).user is not None

    @property
    def url(self) -> str:
        """The location for ffmpeg: credentials percent-encoded, so passwords with a space,
        ``?``, ``#``, ``/`` or ``@`` reach the camera intact (see ``edge.redact.encode_credentials``)."""
        if self.kind in (SourceKind.RTSP, SourceKind.HTTP):
            return encode_credentials(self.location)
        return self.location


def parse_source(url: str) -> Source:
    """Parse ``rtsp(s)://``, ``http(s)://``, ``file://``, ``/dev/videoN`` or a plain file path.

    A password in the URL is registered with ``edge.redact`` so it is masked in every log line.
    """
    text = url.strip()
    register_url(text)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in {"rtsp", "rtsps"}:
        return Source(SourceKind.RTSP, text)
    if scheme in {"http", "https"}:
        return Source(SourceKind.HTTP, text)
    if scheme == "file":
        return Source(SourceKind.FILE, unquote(urlsplit(text).path))
    if scheme:
        raise SourceError(f"unsupported camera URL scheme {scheme!r}: {redact_url(text)}")
    if text.startswith("/dev/"):
        return Source(SourceKind.DEVICE, text)
    return Source(SourceKind.FILE, os.path.expanduser(text))
