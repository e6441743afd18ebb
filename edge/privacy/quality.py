"""Measuring person masks against a reference made by background subtraction.

The reference for one frame of a fixed camera: pixels whose largest per-channel difference from
an empty background frame (median of frames with nobody in view) exceeds ``DIFF``, closed and
opened with small kernels, holes filled, the largest connected blob kept (the one person).
It is approximate (a shadow or a colour close to the background moves its edge by a pixel or
two), so pixels within ``BAND`` px of its outline count neither way ("don't care" band, as in
segmentation benchmarks such as VOC). It also counts the person's shadow on the floor, and bare
floor where a table they moved stood; :func:`shadows` finds those, to be ignored as well.

Smaller people come from scaling the frame down and tiling it into a mosaic the size of the
original frame (every tile holds the person), as the segmentation model's README did.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DIFF = 40  # grey levels, max over B, G, R
BAND = 2  # px of the reference outline ignored


def background(frames: list[np.ndarray]) -> np.ndarray:
    """The per-pixel median of frames with nobody in view."""
    return np.median(np.stack(frames), axis=0).astype(np.uint8)


def reference_mask(frame: np.ndarray, bg: np.ndarray, diff: int = DIFF) -> np.ndarray:
    """Bool HxW: the one person in ``frame`` by background subtraction (see the module doc)."""
    d = (np.abs(frame.astype(np.int16) - bg.astype(np.int16)).max(axis=2) > diff).astype(np.uint8)
    d = cv2.morphologyEx(d, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    d = cv2.morphologyEx(d, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(d)
    if n < 2:
        return np.zeros(d.shape, bool)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    blob = (labels == biggest).astype(np.uint8)
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(blob, contours, -1, 1, thickness=cv2.FILLED)  # fill holes
    return blob.astype(bool)


def reference_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The pixel xyxy box around a reference mask (None when empty)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def mosaic(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` scaled by ``scale`` and tiled into an image of the original size."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    reps = (int(np.ceil(h / small.shape[0])), int(np.ceil(w / small.shape[1]))) + (1,) * (image.ndim - 2)
    return np.tile(small, reps)[:h, :w]


def mosaic_mask(mask: np.ndarray, scale: float) -> np.ndarray:
    """A reference mask scaled and tiled like :func:`mosaic` (bool)."""
    return mosaic(mask.astype(np.uint8) * 255, scale) > 127


@dataclass
class Score:
    """Pixel counts of one comparison (summed over frames before taking ratios)."""

    person: int = 0  # reference person pixels (outside the don't-care band)
    covered: int = 0  # of those, inside the predicted mask
    union: int = 0  # reference or predicted (outside the band)

    def add(self, other: Score) -> None:
        """Sum another frame's counts into this one."""
        self.person += other.person
        self.covered += other.covered
        self.union += other.union

    @property
    def coverage(self) -> float:
        """Share of the person's pixels that the mask hides."""
        return self.covered / self.person if self.person else 1.0

    @property
    def iou(self) -> float:
        """Intersection over union."""
        return self.covered / self.union if self.union else 1.0


def score(predicted: np.ndarray, reference: np.ndarray, band: int = BAND, ignore: np.ndarray | None = None) -> Score:
    """Coverage and IoU counts of ``predicted`` against ``reference``, ignoring a ``band``-px
    band around the reference outline (and the pixels of bool ``ignore``, e.g. :func:`shadows`)."""
    ref = reference.astype(np.uint8)
    if band > 0:
        k = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
        care = ~((cv2.dilate(ref, k) > 0) & ~(cv2.erode(ref, k) > 0))
    else:
        care = np.ones(ref.shape, bool)
    if ignore is not None:
        care &= ~ignore
    r, p = reference & care, predicted & care
    return Score(int(r.sum()), int((r & p).sum()), int((r | p).sum()))


def shadows(frame: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Bool HxW: pixels that look like a shadow on a coloured background (the HSV test of
    Cucchiara et al., 2003): darker than the empty scene (V ratio 0.35-0.95), the same hue
    (within 10 degrees), on a saturated background such as a wooden floor (S > 0.3; a grey shirt
    on a white wall is not taken for a shadow). Background subtraction counts a person's shadow,
    and bare floor where a moved object stood, as the person: these pixels are "don't care"."""
    f = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV).astype(np.float32)
    b = cv2.cvtColor(bg, cv2.COLOR_BGR2HSV).astype(np.float32)
    ratio = (f[..., 2] + 1) / (b[..., 2] + 1)
    hue = np.abs(f[..., 0] - b[..., 0])  # OpenCV hue: 0-180 for 0-360 degrees
    hue = np.minimum(hue, 180 - hue)
    return (ratio > 0.35) & (ratio < 0.95) & (hue < 5) & (b[..., 1] > 0.3 * 255)
