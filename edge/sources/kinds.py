"""Source types: the one place that says which camera URLs are accepted and how each is read.

A :class:`SourceType` names the URL schemes (or scheme-less path prefixes) that select it, says
whether it is live (read at its own pace, reconnected with backoff, the newest frame kept) or
file-like (paced by media time, ends at its end), and makes its decoder (a
:class:`edge.sources.capture.Capture`). Everything that cares consults this registry:

* ``edge.sources.url.parse_source`` (the reader, ``probe``) picks the type with
  :func:`source_type_for`;
* the config's URL check (``cameras.<name>.url``) asks :func:`scheme_problem`;
* ``CameraReader`` opens every capture through ``SourceType.open``.

So a new source type is one module with its capture class and one :func:`register` call,
next to the built-in ones in :mod:`edge.sources.builtin` (registered by the package's import).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from edge.errors import SourceError
from edge.redact import redact_url

if TYPE_CHECKING:  # url.py imports this module; capture.py pulls in OpenCV; types only
    from edge.sources.capture import Capture
    from edge.sources.url import Source


class SourceKind(str, Enum):
    """The built-in source types' names (``Source.kind``)."""

    RTSP = "rtsp"
    HTTP = "http"
    FILE = "file"
    DEVICE = "device"


@dataclass(frozen=True)
class CaptureOptions:
    """What a capture factory gets from the camera's config and its reader."""

    max_pixels: int
    stop: threading.Event = field(default_factory=threading.Event)
    rtsp_transport: str = "tcp"
    decode: str = "all"
    decode_args: list[str] = field(default_factory=list)
    loop: bool = False  # file-like types: start again at the end
    ffmpeg: str | None = None  # the executable, for types with ``needs_ffmpeg`` (None: look it up)


CaptureFactory = Callable[["Source", CaptureOptions], "Capture"]


def _as_written(text: str) -> str:
    return text


@dataclass(frozen=True)
class SourceType:
    """One kind of camera source (see the module docstring)."""

    name: str  # Source.kind; a SourceKind for the built-in types
    open: CaptureFactory  # a new, unopened capture; the reader opens it (live: once per connection)
    label: str  # how the config's "unsupported URL scheme" message lists it, e.g. "http(s)"
    live: bool = True
    schemes: tuple[str, ...] = ()  # lower-case URL schemes that select it
    prefixes: tuple[str, ...] = ()  # scheme-less locations starting with one ("" matches every path)
    network: bool = False  # the URL may carry credentials: redacted, percent-encoded for ffmpeg
    needs_ffmpeg: bool = False  # the reader finds the ffmpeg executable up front (SourceError without)
    location: Callable[[str], str] = _as_written  # the URL as written -> what the capture opens
    check: Callable[[str], None] | None = None  # at open_camera: SourceError when the location cannot work


_TYPES: dict[str, SourceType] = {}


def register(source_type: SourceType) -> SourceType:
    """Add ``source_type`` (replacing a registered type of the same name); returns it.

    A URL scheme claimed by another registered type is a ValueError: one scheme, one type."""
    for other in _TYPES.values():
        taken = set(other.schemes) & set(source_type.schemes)
        if other.name != source_type.name and taken:
            raise ValueError(f"URL scheme {sorted(taken)[0]!r} is already read by source type {other.name!r}")
    _TYPES[source_type.name] = source_type
    return source_type


def unregister(name: str) -> None:
    """Remove the source type called ``name`` (tests, plugins); unknown names are ignored."""
    _TYPES.pop(name, None)


def source_types() -> list[SourceType]:
    """Every registered type, in registration order."""
    return list(_TYPES.values())


def url_scheme(url: str) -> str:
    """The lower-case scheme of ``url`` (``rtsp``), or ``""`` for a plain path."""
    return url.split("://", 1)[0].lower() if "://" in url else ""


def scheme_problem(url: str) -> str | None:
    """Why the config must refuse ``url``'s scheme, or None when a registered type reads it."""
    scheme = url_scheme(url)
    if not scheme or any(scheme in t.schemes for t in _TYPES.values()):
        return None
    return f"unsupported URL scheme {scheme!r} ({', '.join(t.label for t in _TYPES.values())})"


def source_type_for(text: str) -> SourceType:
    """The type that reads ``text`` (a stripped camera URL or path); SourceError when none does.

    A URL goes by its scheme; a plain path by the longest matching prefix (``/dev/`` before
    the files' catch-all ``""``)."""
    scheme = url_scheme(text)
    if scheme:
        for t in _TYPES.values():
            if scheme in t.schemes:
                return t
        raise SourceError(f"unsupported camera URL scheme {scheme!r}: {redact_url(text)}")
    best: tuple[int, SourceType] | None = None
    for t in _TYPES.values():
        for prefix in t.prefixes:
            if text.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), t)
    if best is None:
        raise SourceError(f"no source type reads {redact_url(text)}")
    return best[1]
