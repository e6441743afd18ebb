"""Decoders behind one small interface: ``open`` / ``grab`` / ``retrieve`` / ``close``.

``grab`` advances to the next frame cheaply; ``retrieve`` converts it to BGR. The reader only
retrieves the frames it samples, which saves the colour conversion on all the others.
Files are decoded in-process with OpenCV (see ``FileCapture``); live sources by an ffmpeg
subprocess (see ``edge.sources.ffmpeg``).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Protocol

import cv2
import numpy as np

from edge.errors import SourceError
from edge.sources.sampling import shrink_to

log = logging.getLogger("edge.sources.capture")


class ReadTimeout(Exception):
    """No frame arrived in time (the reader turns this into a stall or a failed connect)."""


class Capture(Protocol):
    """What the reader needs from a decoder (a source type's ``open`` makes one, see
    ``edge.sources.kinds``)."""

    @property
    def pts(self) -> float | None:
        """Media timestamp (s) of the last grabbed frame, None when unknown."""
        ...

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the decoded frames, known after ``open``."""
        ...

    def open(self, timeout: float) -> None:
        """Connect/open; raise SourceError with a one-line, redacted reason."""
        ...

    def grab(self, timeout: float) -> bool:
        """Advance to the next frame; False at end of stream; ReadTimeout if none in time."""
        ...

    def retrieve(self) -> np.ndarray:
        """The last grabbed frame as an HxWx3 uint8 BGR image."""
        ...

    def end_reason(self) -> str:
        """Why the stream ended (live types: the reader logs it before reconnecting)."""
        ...

    def close(self, *, graceful: bool = True) -> None:
        """Release everything; safe to call twice. ``graceful=False``: the source is wedged, kill it."""
        ...


class FileCapture:
    """A video file decoded by OpenCV's bundled FFmpeg.

    In-process decoding gives exact per-frame timestamps (``CAP_PROP_POS_MSEC``) and needs no
    ffmpeg executable; local files cannot stall like a network read, so no watchdog is needed.
    With ``loop`` the file is reopened at the end and timestamps keep increasing.

    Files whose frames exceed ``max_pixels`` are refused at open, before a frame is decoded:
    a tiny 8192x8192 H.264 file would otherwise cost ~0.5 GB per decoded frame in this
    process. (Opening costs one probe decode inside OpenCV; that is the floor.)
    """

    def __init__(self, path: str, *, loop: bool = False, max_pixels: int | None = None) -> None:
        self.path = path
        self.loop = loop
        self.max_pixels = max_pixels
        self._cap: cv2.VideoCapture | None = None
        self._pts: float | None = None
        self._offset = 0.0  # added to pts after each loop so time never goes back
        self._frame_time = 0.04
        self._pending = False  # open() already grabbed the first frame
        self._frames_this_pass = 0
        self._size = (0, 0)

    @property
    def pts(self) -> float | None:
        return self._pts

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the file's frames, known after ``open``."""
        return self._size

    @property
    def fps(self) -> float | None:
        """The container's nominal frame rate, if it declares one."""
        return None if self._frame_time <= 0 else 1.0 / self._frame_time

    def open(self, timeout: float = 0.0) -> None:
        if not os.path.isfile(self.path):
            raise SourceError(f"video file not found: {self.path}")
        self._open_capture()
        # Decode the first frame now so a corrupt file fails at open, not silently later.
        if not self._grab_one():
            self.close()
            raise SourceError(f"cannot decode video file: {self.path}")
        self._pending = True

    def _open_capture(self) -> None:
        cap = cv2.VideoCapture(self.path, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            raise SourceError(f"cannot open video file (not a supported video?): {self.path}")
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if self.max_pixels and w * h > self.max_pixels:
            cap.release()
            raise SourceError(
                f"video file {self.path} is {w}x{h} ({w * h / 1e6:.1f} Mpx), above the "
                f"{self.max_pixels / 1e6:.1f} Mpx limit for decoded frames (max_frame_pixels)"
            )
        self._size = (w, h)
        fps = cap.get(cv2.CAP_PROP_FPS)
        if fps and math.isfinite(fps) and 0 < fps <= 1000:
            self._frame_time = 1.0 / fps
        self._cap = cap
        self._frames_this_pass = 0

    def _grab_one(self) -> bool:
        assert self._cap is not None
        if not self._cap.grab():
            return False
        self._frames_this_pass += 1
        msec = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        pts = self._offset + msec / 1000.0
        if self._pts is not None and pts <= self._pts:
            pts = self._pts + self._frame_time  # missing or broken timestamps: assume nominal rate
        self._pts = pts
        return True

    def grab(self, timeout: float = 0.0) -> bool:
        if self._cap is None:
            return False
        if self._pending:
            self._pending = False
            return True
        if self._grab_one():
            return True
        if not self.loop or self._frames_this_pass == 0:
            return False
        # Reopen rather than seek: seeking to 0 is unreliable for some containers.
        log.debug("looping %s", self.path)
        self._cap.release()
        self._offset = (self._pts or 0.0) + self._frame_time
        self._open_capture()
        return self._grab_one()

    def retrieve(self) -> np.ndarray:
        assert self._cap is not None
        ok, image = self._cap.retrieve()
        if not ok or image is None:
            raise SourceError(f"cannot decode a frame of {self.path}")
        if self.max_pixels:
            image = shrink_to(image, self.max_pixels)  # a size change after the first frame
        return image

    def end_reason(self) -> str:
        """A file just ends."""
        return "end of file"

    def close(self, *, graceful: bool = True) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
