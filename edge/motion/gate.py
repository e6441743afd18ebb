"""Frigate-style motion detector used as a gate in front of the (expensive) detector.

A small grey copy of the frame is compared with a running-average background; changed pixels
above ``threshold`` are dilated and counted. Inference runs when the changed fraction exceeds
``min_area``, on the first frame, and at least every ``max_skip`` frames, so an object that
enters always causes motion and is never missed, while a quiet camera costs almost nothing.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.config import MotionConfig
from edge.sources.sampling import resize


class MotionGate:
    """Call ``should_infer(image)`` once per sampled frame."""

    def __init__(self, cfg: MotionConfig, masks: list[list[tuple[float, float]]] | None = None) -> None:
        self.cfg = cfg
        self._masks = masks or []
        self._background: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._since_infer = 0
        self.last_fraction = 0.0

    def _small_grey(self, image: np.ndarray) -> np.ndarray:
        # grey first (a third of the pixels to shrink), then the shared fast shrink
        grey = resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), None, min(self.cfg.frame_height, image.shape[0]))
        return cv2.GaussianBlur(grey, (3, 3), 0).astype(np.float32)

    def motion_fraction(self, image: np.ndarray) -> float:
        """Fraction of the (unmasked) frame that changed since the background; updates the background."""
        grey = self._small_grey(image)
        if self._background is None or self._background.shape != grey.shape:
            self._background = grey.copy()
            self._mask = self._build_mask(grey.shape)
            return 1.0
        diff = cv2.absdiff(grey, self._background)
        changed: np.ndarray = (diff > self.cfg.threshold).astype(np.uint8)
        changed = cv2.dilate(changed, np.ones((3, 3), np.uint8), iterations=2)
        if self._mask is not None:
            changed = cv2.bitwise_and(changed, self._mask)
        fraction = float(changed.mean())
        if fraction > 0.8:
            # lighting jump or camera moved: relearn the background instead of staying "in motion"
            self._background = grey.copy()
        else:
            cv2.accumulateWeighted(grey, self._background, 0.2)
        return fraction

    def should_infer(self, image: np.ndarray, force: bool = False) -> bool:
        """True when the detector should run on this frame (``force``: the caller needs it,
        e.g. a tracked object is moving or was not found last time)."""
        if not self.cfg.enabled:
            return True
        self.last_fraction = self.motion_fraction(image)
        self._since_infer += 1
        if force or self.last_fraction >= self.cfg.min_area or self._since_infer >= self.cfg.max_skip:
            self._since_infer = 0
            return True
        return False

    def _build_mask(self, shape: tuple[int, ...]) -> np.ndarray | None:
        if not self._masks:
            return None
        h, w = shape[:2]
        mask = np.ones((h, w), np.uint8)
        for poly in self._masks:
            pts = (np.asarray(poly, np.float32) * [w, h]).astype(np.int32)
            cv2.fillPoly(mask, [pts], 0)
        return mask
