"""Frame shaping shared by every source: time-based sampling, resizing and reconnect backoff."""

from __future__ import annotations

import math

import cv2
import numpy as np


class Sampler:
    """Keep frames on a fixed grid of ``1/fps`` seconds of source time.

    A fixed grid (rather than "at least 1/fps since the last kept frame") keeps the average
    rate exact when the source rate is not a multiple of ``fps``. Half a period of tolerance
    absorbs jitter so a 5 fps camera sampled at 5 fps keeps every frame.
    """

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError("fps must be positive")
        self._period = 1.0 / fps
        self._tolerance = self._period / 2
        self._next: float | None = None

    def accept(self, t: float) -> bool:
        """Whether the frame at time ``t`` (seconds, any origin) is kept."""
        if self._next is None or t < self._next - self._period - 1.0:
            # First frame, or time jumped backwards (new timestamps): start a new grid.
            self._next = t
        if t < self._next - self._tolerance:
            return False
        self._next += self._period
        if self._next <= t:
            # Behind by more than a period (gap, or a slow source): re-anchor, don't burst.
            self._next = t + self._period
        return True


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
