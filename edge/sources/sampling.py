"""Frame shaping shared by every source: time-based sampling, resizing and reconnect backoff."""

from __future__ import annotations

import math

import cv2
import numpy as np

# Of a base period: a frame this much early still counts as due at the base rate, so frames on a
# source's own grid are not skipped by rounding (edge.pipeline.rate uses the same rule).
SLACK = 0.25


class Sampler:
    """Keep frames on a grid of ``1/fps`` seconds of source time, or ``1/burst_fps`` while asked.

    A fixed grid (rather than "at least 1/fps since the last kept frame") keeps the average
    rate exact when the source rate is not a multiple of ``fps``. Half a period of tolerance
    absorbs jitter so a 5 fps camera sampled at 5 fps keeps every frame.

    With a ``burst_fps``, frames fall in slots of the burst grid; ``accept(t, burst=True)`` keeps
    every slot, ``accept(t)`` only a slot at least ``(1 - SLACK)/fps`` after the last kept frame:
    the frames the pipeline's detection rate would pick from the burst-rate stream, so switching
    rate neither skips nor doubles a frame.
    """

    def __init__(self, fps: float, burst_fps: float | None = None) -> None:
        if fps <= 0:
            raise ValueError("fps must be positive")
        self._period = 1.0 / fps
        self._slot_len = 1.0 / burst_fps if burst_fps and burst_fps > fps else self._period
        self._next: float | None = None  # next slot of the grid
        self._last = -math.inf  # time of the last kept frame

    def _slot(self, t: float) -> tuple[float, bool] | None:
        """(grid time of the slot ``t`` falls in, whether the base rate keeps it); None between
        slots. Pure: ``accept`` moves the grid."""
        slot = self._slot_len
        if self._next is None or t < self._next - slot - 1.0:
            return t, True  # first frame, or time jumped backwards (new timestamps): a new grid
        if t < self._next - slot / 2:
            return None
        # The slot nearest t: after a gap, or from a slower source, the grid goes on, no catch-up.
        g = self._next + max(0, math.floor((t - self._next) / slot + 0.5)) * slot
        base = slot == self._period or not 0 <= t - self._last < self._period * (1 - SLACK)
        return g, base

    def wants(self, t: float, burst: bool = False) -> bool:
        """Whether :meth:`accept` would keep the frame at ``t`` (without keeping it)."""
        s = self._slot(t)
        return s is not None and (burst or s[1])

    def accept(self, t: float, burst: bool = False) -> bool:
        """Whether the frame at time ``t`` (seconds, any origin) is kept; ``burst``: at the burst rate."""
        s = self._slot(t)
        if s is None:
            return False
        self._next = s[0] + self._slot_len
        if burst or s[1]:
            self._last = t
            return True
        return False


class RateDemand:
    """One camera's wish for the burst rate: written by its pipeline, read by its reader thread.

    ``busy_at`` is the time (``Frame.capture_time``) of the last inferred frame on which the
    pipeline found a track that needs watching closely (edge.pipeline.rate). The reader takes
    the next frame at the burst rate only while that is the frame its consumer took last, else
    it samples at ``detect.fps``: a quiet scene costs no more than ``detect.fps`` frames. The
    consumer's frame, not the one being read, because a reader runs ahead of its pipeline. One
    float: its assignment is atomic, no lock needed.
    """

    def __init__(self) -> None:
        self.busy_at = -math.inf

    def bursting(self, consumed: float) -> bool:
        """Whether the next frame comes at the burst rate, the consumer's last frame being at ``consumed``."""
        return consumed == self.busy_at


def target_size(src_w: int, src_h: int, width: int | None, height: int | None) -> tuple[int, int]:
    """Output (width, height): as configured, keeping the aspect ratio when only one is set."""
    if width and height:
        return width, height
    if width:
        return width, max(1, round(src_h * width / src_w))
    if height:
        return max(1, round(src_w * height / src_h)), height
    return src_w, src_h


def resize(image: np.ndarray, width: int | None, height: int | None) -> np.ndarray:
    """Resize a BGR image to the detect size (a no-op when none is configured)."""
    h, w = image.shape[:2]
    size = target_size(w, h, width, height)
    if size == (w, h):
        return image
    if size[0] >= w:  # INTER_AREA is slow and pointless when enlarging
        return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    # INTER_AREA avoids aliasing when shrinking, but is slow by a non-whole factor (1920x1080 ->
    # 768x432: 7.7 ms a frame); shrinking by the whole factor first takes OpenCV's fast path,
    # and the rest (less than 2x) is bilinear: 1.5 ms.
    k = min(w // size[0], h // size[1])
    if k >= 2:
        image = cv2.resize(image, (w // k, h // k), interpolation=cv2.INTER_AREA)
        if image.shape[1] == size[0] and image.shape[0] == size[1]:
            return image
        return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def shrink_to(image: np.ndarray, max_pixels: int) -> np.ndarray:
    """``image`` scaled down (aspect kept) to at most ``max_pixels`` pixels; as is if within."""
    h, w = image.shape[:2]
    if w * h <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (w * h))
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class Backoff:
    """Capped exponential delays: initial, 2x, 4x ... max; ``reset`` after a success."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._initial = initial
        self._max = max(maximum, initial)
        self._delay = initial

    def next(self) -> float:
        """The delay before the next attempt."""
        delay = self._delay
        self._delay = min(self._delay * 2, self._max)
        return delay

    def reset(self) -> None:
        """Start again from the initial delay."""
        self._delay = self._initial
