"""Plate detection with LPD-YuNet (4-corner quads), run at several scales.

YuNet has a fixed 320x240 input, so a large frame shrinks small plates below its smallest
anchor (10 px). We therefore run it on the whole image and, for images much larger than the
input, on overlapping 4:3 tiles too, and merge with NMS in image coordinates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import product

import cv2
import numpy as np

from edge.errors import ModelError
from edge.inference.backends import Backend
from edge.plates.geometry import nms, order_corners, quad_to_box
from edge.registry.manifest import HeadSpec

log = logging.getLogger("edge.plates.detect")


@dataclass(frozen=True)
class PlateQuad:
    """A detected plate: corners (4, 2) in image pixels ordered tl, tr, br, bl, and a score."""

    corners: np.ndarray
    score: float

    @property
    def box(self) -> np.ndarray:
        """Axis-aligned ``xyxy`` box in pixels."""
        return quad_to_box(self.corners)


def make_priors(width: int, height: int, steps: list[int], min_sizes: list[list[int]]) -> np.ndarray:
    """YuNet anchor priors (cx, cy, w, h) normalised to the input size, in the model's order."""
    fh, fw = (height + 1) // 2 // 2, (width + 1) // 2 // 2
    priors = []
    for k, step in enumerate(steps):
        fh, fw = fh // 2, fw // 2
        for i, j in product(range(fh), range(fw)):
            for m in min_sizes[k]:
                priors.append([(j + 0.5) * step / width, (i + 0.5) * step / height, m / width, m / height])
    return np.asarray(priors, dtype=np.float32)


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` resized to ``width`` x ``height`` with area averaging (no aliasing when shrinking).
    OpenCV's area resize is fast for integer factors only (a 1280x1280 photo to 320x240: 4.4 ms,
    5.33x vertically); so average by the integer factors first, then the small rest bilinearly
    (2.5 ms, the same picture within a pixel's interpolation)."""
    h, w = image.shape[:2]
    fx, fy = w // width, h // height
    if fx >= 2 and fy >= 2 and (w % width or h % height):
        image = cv2.resize(image, (w // fx, h // fy), interpolation=cv2.INTER_AREA)
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


# A detector input darker than this mean grey level (night, shade, an under-exposed camera) is
# brightened, before it is shrunk, by a gamma curve that lifts its mean to DARK_TARGET of full
# scale: the detector misses dark plates (EU/BR photos darkened to a quarter of their light:
# 94 -> 106 of 111 found), while the reader copes with them. About one photo in twelve of the
# shared sets is this dark and reads the same either way.
DARK_MEAN, DARK_TARGET = 70.0, 0.45
_GREY = np.array([0.114, 0.587, 0.299])


def brightened(image: np.ndarray) -> np.ndarray:
    """``image`` (BGR uint8) with a gamma lift when its mean grey level is under ``DARK_MEAN``."""
    # grey (BT.601 weights of B, G, R) of every 8th pixel: ~0.5 ms on a 1280 px photo
    mean = float(image[::8, ::8].reshape(-1, 3).mean(axis=0) @ _GREY)
    if mean >= DARK_MEAN:
        return image
    gamma = np.log(DARK_TARGET) / np.log(max(mean, 1.0) / 255.0)
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma, 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut)


class YuNetPlateDetector:
    """Decode LPD-YuNet outputs into plate quads.

    ``head`` is the manifest head section (steps, min_sizes, variance); ``size`` its (w, h).
    ModelError when the head lacks the prior ``steps`` or ``min_sizes``.
    """

    def __init__(self, backend: Backend, size: tuple[int, int], head: HeadSpec, input_name: str | None = None):
        if head.steps is None or head.min_sizes is None:
            raise ModelError("a yunet_plate head needs head.steps and head.min_sizes (the prior boxes)")
        self.backend = backend
        self.width, self.height = int(size[0]), int(size[1])
        self.input_name = input_name or backend.inputs[0].name
        self.priors = make_priors(self.width, self.height, list(head.steps), [list(s) for s in head.min_sizes])
        self.variance = head.variance[0]

    def run_patch(self, patch: np.ndarray, score_threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Run once on a BGR patch (stretched to the input); return quads (N,4,2) in patch pixels, scores."""
        ph, pw = patch.shape[:2]
        img = shrink(brightened(patch), self.width, self.height)
        blob = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)
        out = self.backend.infer({self.input_name: blob})
        loc, conf, iou = out["loc"], out["conf"], out["iou"]
        scores = np.sqrt(conf[:, 1] * np.clip(iou[:, 0], 0.0, 1.0))
        idx = np.flatnonzero(scores >= score_threshold)
        if idx.size == 0:
            return np.zeros((0, 4, 2), np.float32), np.zeros((0,), np.float32)
        pr = self.priors[idx]
        lc = loc[idx]
        # after its box (0:4) the model gives five points: four corners and the plate's centre,
        # in an order that varies on plates unlike its (Chinese) training set. The quad is the
        # upright box of all five: the corners as an ordered quad shear crops of such plates
        # (Brazil 98.2% -> 90.4%), and the box of four of the points (the previous decoding)
        # cut off a corner of a plate tilted up to the right (rotated 12 degrees: 61 -> 92 of
        # 111 EU/BR photos read)
        pts = np.stack([pr[:, :2] + lc[:, a : a + 2] * self.variance * pr[:, 2:4] for a in range(4, 14, 2)], axis=1)
        pts = pts * np.array([pw, ph], dtype=np.float32)
        lo, hi = pts.min(axis=1), pts.max(axis=1)
        quads = np.stack([lo, np.stack([hi[:, 0], lo[:, 1]], 1), hi, np.stack([lo[:, 0], hi[:, 1]], 1)], 1)
        return quads.astype(np.float32), scores[idx].astype(np.float32)

    def detect(
        self,
        image: np.ndarray,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        tiles: bool = True,
        max_plates: int = 5,
        only_tiles: bool = False,
        windows: list[tuple[int, int, int, int]] | None = None,
    ) -> list[PlateQuad]:
        """Plates in a BGR image, best first. Tiles are added when the image is much larger than
        the model input (so a 1280 px frame is also seen at ~2x the full-frame resolution).
        ``windows`` (x0, y0, x1, y1 in pixels) replaces the whole image and its tiles."""
        h, w = image.shape[:2]
        all_q, all_s = [], []
        wins = self._windows(w, h, tiles)
        wins = windows if windows is not None else wins[1:] if only_tiles else wins
        for x0, y0, x1, y1 in wins:
            q, s = self.run_patch(image[y0:y1, x0:x1], score_threshold)
            if len(s):
                all_q.append(q + np.array([x0, y0], dtype=np.float32))
                all_s.append(s)
        if not all_q:
            return []
        quads, scores = np.concatenate(all_q), np.concatenate(all_s)
        boxes = np.concatenate([quads.min(axis=1), quads.max(axis=1)], axis=1)  # quad_to_box of each
        keep = nms(boxes, scores, nms_threshold, top_k=max_plates)
        return [PlateQuad(order_corners(quads[i]), float(scores[i])) for i in keep]

    def is_large(self, image: np.ndarray) -> bool:
        """True when the image is big enough for tiles to see plates at a higher resolution."""
        h, w = image.shape[:2]
        return max(w / self.width, h / self.height) >= 2.5

    def zoom_windows(self, w: int, h: int) -> list[tuple[int, int, int, int]]:
        """Windows for a second look at a region where the first pass found no plate: its lower
        half and lower two thirds, full width (a plate sits on the lower part of a vehicle, and
        of most photos of one). Each is stretched to the model input, so it is seen at up to
        twice the resolution the whole image was (a small plate grows past the smallest anchor)."""
        return [(0, h // 2, w, h), (0, h // 3, w, h)]

    def _windows(self, w: int, h: int, tiles: bool) -> list[tuple[int, int, int, int]]:
        wins = [(0, 0, w, h)]
        if not tiles or max(w / self.width, h / self.height) < 2.5:
            return wins
        # 2x2 overlapping tiles of 60% of each side: plates cut by one tile are whole in another
        tw, th = int(w * 0.6), int(h * 0.6)
        for x0, y0 in product((0, w - tw), (0, h - th)):
            wins.append((x0, y0, x0 + tw, y0 + th))
        return wins
