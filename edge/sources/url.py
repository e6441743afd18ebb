"""Classify a camera ``url`` into the source type that reads it (see ``edge.sources.kinds``)."""

from __future__ import annotations

from dataclasses import dataclass

from edge.redact import encode_credentials, redact_text, redact_url, register_url, split_userinfo
from edge.sources.kinds import SourceKind, SourceType, source_type_for

__all__ = ["Source", "SourceKind", "parse_source"]


@dataclass(frozen=True)
class Source:
    """A parsed camera location: ``location`` is the URL (network) or a filesystem path."""

    source_type: SourceType
    location: str

    @property
    def kind(self) -> str:
        """The source type's name (a ``SourceKind`` for the built-in types)."""
        return self.source_type.name

    @property
    def live(self) -> bool:
        """Live sources are read at their own pace and reconnected; files are not."""
        return self.source_type.live

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
        return self.source_type.network and split_userinfo(self.location).user is not None

    @property
    def url(self) -> str:
        """The location for ffmpeg: credentials percent-encoded, so passwords with a space,
        ``?``, ``#``, ``/`` or ``@`` reach the camera intact (see ``edge.redact.encode_credentials``)."""
        if self.source_type.network:
            return encode_credentials(self.location)
        return self.location


def parse_source(url: str) -> Source:
    """Parse ``url`` with the registered source types: ``rtsp(s)://``, ``http(s)://``,
    ``file://``, ``/dev/videoN`` or a plain file path out of the box.

    A password in the URL is registered with ``edge.redact`` so it is masked in every log line.
    """
    text = url.strip()
    register_url(text)
    source_type = source_type_for(text)
    return Source(source_type, source_type.location(text))
