"""Person masks from the MediaPipe selfie segmentation model, run on square crops around person
boxes (never on the whole CCTV frame: there it loses everyone under ~190 px tall).

Each box is looked at in square crops (zeros outside the frame, resized to 256x256 with
INTER_AREA, RGB / 255): one of side ``max(w, h) * 1.3`` centred on the box and, for a box
taller than 1.5x its width (a standing or walking person), one around each half of it, where
hands and feet are seen twice as large. The probability maps are resized back and merged with a
per-pixel max. Privacy errs on the side of masking, so the mask is wider than the model's own
outline (over-masking a little floor next to a person is fine; an unmasked hand is not):

- the threshold is 0.3 (not the README's 0.5), and 0.1 inside the box grown by 10% of its height,
  where the detector says a person is: swinging hands and feet the model is unsure of count;
- the mask is then dilated by 0.5% of the box height (at least 1 px; 2 px for a 400 px person),
  a margin that scales with the person instead of a fixed 3x3.

Measured: docs/privacy.md (coverage >= 0.99 standing and walking, IoU 0.86-0.91 standing).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from edge.errors import ModelError
from edge.inference.backends import Backend

if TYPE_CHECKING:
    from edge.inference.pool import ModelPool

SEGMENTER = "mediapipe-selfie-segmentation"
PAD = 1.3  # crop side / longest box side
THRESHOLD = 0.3  # the README's 0.5 misses more of a walking person's arms and feet; privacy errs to masking
BOX_THRESHOLD = 0.1  # inside the person's (grown) box: the detector already says a person is there
BOX_GROW = 0.1  # the box grown by this share of its height each side (a hand reaching out of it)
MARGIN = 0.005  # dilation radius / box height (>= 1 px): a safety margin that scales with the person
TALL = 1.5  # boxes taller than this x their width also get a crop around each half

Box = tuple[float, float, float, float]


class SegmentationError(ModelError):
    """The segmentation model could not load or gave no usable mask for a frame."""


class PersonSegmenter:
    """Person masks for boxes in a BGR image: ``mask(image, boxes) -> bool HxW``."""

    def __init__(
        self,
        backend: Backend,
        *,
        pad: float = PAD,
        threshold: float = THRESHOLD,
        box_threshold: float = BOX_THRESHOLD,
        margin: float = MARGIN,
        halves: bool = True,
    ) -> None:
        spec = backend.inputs[0]
        if len(spec.shape) != 4 or spec.shape[3] != 3 or spec.shape[1] != spec.shape[2]:
            raise SegmentationError(f"segmentation model input {spec.shape} is not [1,S,S,3]")
        self.backend, self.size, self.input_name = backend, int(spec.shape[1]), spec.name
        self.pad, self.threshold, self.box_threshold = pad, threshold, box_threshold
        self.margin, self.halves = margin, halves

    @classmethod
    def load(
        cls,
        name: str = SEGMENTER,
        *,
        threads: int = 2,
        cache_dir: Path | None = None,
        mirror: str | None = None,
        pool: ModelPool | None = None,
        **_: Any,
    ) -> PersonSegmenter:
        """Pull ``name`` through the registry and open it with LiteRT (shared by every caller of
        ``pool``, default the process's). Raises SegmentationError (a ModelError) naming the problem."""
        from edge.inference.pool import default_pool

        pool = pool or default_pool()
        try:
            manifest, folder = pool.ensure_model(name, cache_dir=cache_dir, mirror=mirror)
            if manifest.task != "segment":
                raise ModelError(f"model {name} has task {manifest.task!r}, not segment")
            return cls(pool.backend("litert", folder / manifest.entry, threads))
        except SegmentationError:
            raise
        except ModelError as err:
            raise SegmentationError(str(err)) from None

    def probability(self, crop: np.ndarray) -> np.ndarray:
        """Person probability (float32, SxS of the model) of one square BGR crop."""
        x = cv2.resize(crop, (self.size, self.size), interpolation=cv2.INTER_AREA)
        x = cv2.cvtColor(x, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255.0
        try:
            out = next(iter(self.backend.infer({self.input_name: x}).values()))
        except Exception as err:  # noqa: BLE001 - any runtime failure is a missing mask: fail closed
            raise SegmentationError(f"segmentation failed: {type(err).__name__}: {str(err)[:200]}") from None
        prob = np.asarray(out, np.float32).reshape(self.size, self.size) if np.size(out) == self.size**2 else None
        if prob is None or not np.isfinite(prob).all():
            raise SegmentationError("segmentation model returned no usable mask (wrong shape or NaN)")
        return prob

    def _view(self, image: np.ndarray, box: Box) -> tuple[int, int, np.ndarray]:
        """Person probability of the square crop around ``box``, clipped to the frame:
        (x, y, map) with the map's top-left corner at frame pixel (x, y)."""
        h, w = image.shape[:2]
        x0, y0, x1, y1 = box
        side = int(np.ceil(max(x1 - x0, y1 - y0, 2.0) * self.pad))
        cx0, cy0 = int(round((x0 + x1 - side) / 2)), int(round((y0 + y1 - side) / 2))
        # the part of the square inside the frame, in frame and in crop coordinates
        fx0, fy0, fx1, fy1 = max(cx0, 0), max(cy0, 0), min(cx0 + side, w), min(cy0 + side, h)
        if fx1 <= fx0 or fy1 <= fy0:
            return 0, 0, np.zeros((0, 0), np.float32)
        crop = np.zeros((side, side, 3), np.uint8)
        crop[fy0 - cy0 : fy1 - cy0, fx0 - cx0 : fx1 - cx0] = image[fy0:fy1, fx0:fx1]
        p = cv2.resize(self.probability(crop), (side, side), interpolation=cv2.INTER_LINEAR)
        return fx0, fy0, p[fy0 - cy0 : fy1 - cy0, fx0 - cx0 : fx1 - cx0]

    def person(self, image: np.ndarray, box: Box) -> tuple[int, int, np.ndarray]:
        """The mask of the person in pixel ``box`` (see the module doc): (x, y, bool map) with
        the map's top-left corner at frame pixel (x, y); the map covers the box's main crop."""
        x0, y0, x1, y1 = box
        bw, bh = x1 - x0, y1 - y0
        fx, fy, prob = self._view(image, box)
        if prob.size == 0:
            return fx, fy, prob > 0
        if self.halves and bh > TALL * bw:
            mid = (y0 + y1) / 2
            for half in ((x0, y0, x1, mid), (x0, mid, x1, y1)):
                hx, hy, hp = self._view(image, half)
                _merge(prob, fx, fy, hp, hx, hy)
        threshold = np.full(prob.shape, self.threshold, np.float32)
        g = BOX_GROW * bh
        gx0, gy0 = max(int(x0 - g) - fx, 0), max(int(y0 - g) - fy, 0)
        threshold[gy0 : max(int(np.ceil(y1 + g)) - fy, 0), gx0 : max(int(np.ceil(x1 + g)) - fx, 0)] = self.box_threshold
        out = prob > threshold
        r = max(1, int(round(self.margin * bh))) if self.margin > 0 else 0
        if r and out.any():
            kernel = cv2.getStructuringElement(cv2.MORPH_RECT if r == 1 else cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            out = cv2.dilate(out.astype(np.uint8), kernel) > 0
        return fx, fy, out

    def mask(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """A bool HxW mask of the people in pixel ``boxes`` (N,4 xyxy) of BGR ``image``."""
        h, w = image.shape[:2]
        out = np.zeros((h, w), bool)
        for box in np.asarray(boxes, np.float32).reshape(-1, 4):
            x, y, m = self.person(image, (float(box[0]), float(box[1]), float(box[2]), float(box[3])))
            out[y : y + m.shape[0], x : x + m.shape[1]] |= m
        return out


def _merge(into: np.ndarray, x: int, y: int, other: np.ndarray, ox: int, oy: int) -> None:
    """Per-pixel max of map ``other`` (top-left at frame pixel ox, oy) into map ``into`` (at x, y),
    where they overlap."""
    ax0, ay0 = max(x, ox), max(y, oy)
    ax1, ay1 = min(x + into.shape[1], ox + other.shape[1]), min(y + into.shape[0], oy + other.shape[0])
    if ax1 > ax0 and ay1 > ay0:
        region = into[ay0 - y : ay1 - y, ax0 - x : ax1 - x]
        np.maximum(region, other[ay0 - oy : ay1 - oy, ax0 - ox : ax1 - ox], out=region)
