"""The built-in source types: RTSP, HTTP(S), files and V4L2 devices (see :mod:`edge.sources.kinds`).

``edge/sources/__init__.py`` imports this module, so the types are registered before anything in
the package (or the config's URL check) consults the registry. Captures are imported on use: the
config check must not load OpenCV.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from edge.errors import SourceError
from edge.sources.kinds import CaptureOptions, SourceKind, SourceType, register

if TYPE_CHECKING:
    from edge.sources.capture import Capture
    from edge.sources.url import Source


def _ffmpeg_capture(source: Source, opts: CaptureOptions) -> Capture:
    from edge.sources.ffmpeg import FFmpegCapture

    return FFmpegCapture(
        source,
        rtsp_transport=opts.rtsp_transport,
        ffmpeg=opts.ffmpeg,
        stop=opts.stop,
        max_pixels=opts.max_pixels,
        decode=opts.decode,
        decode_args=opts.decode_args,
    )


def _file_capture(source: Source, opts: CaptureOptions) -> Capture:
    from edge.sources.capture import FileCapture

    return FileCapture(source.location, loop=opts.loop, max_pixels=opts.max_pixels)


def _file_location(text: str) -> str:
    return unquote(urlsplit(text).path) if "://" in text else os.path.expanduser(text)


def _file_exists(location: str) -> None:
    if not os.path.isfile(location):
        raise SourceError(f"video file not found: {location}")


register(
    SourceType(SourceKind.RTSP, _ffmpeg_capture, "rtsp", schemes=("rtsp", "rtsps"), network=True, needs_ffmpeg=True)
)
register(
    SourceType(SourceKind.HTTP, _ffmpeg_capture, "http(s)", schemes=("http", "https"), network=True, needs_ffmpeg=True)
)
register(
    SourceType(
        SourceKind.FILE,
        _file_capture,
        "file path",
        live=False,
        schemes=("file",),
        prefixes=("",),
        location=_file_location,
        check=_file_exists,
    )
)
register(SourceType(SourceKind.DEVICE, _ffmpeg_capture, "/dev/videoN", prefixes=("/dev/",), needs_ffmpeg=True))
