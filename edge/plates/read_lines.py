"""Quad-by-quad readers: PP-OCRv4 CTC (``ocr_model: ppocr-v4``) and LPRNet (Chinese plates). The
best quad first; weaker quads, then tiles, only while nothing was read confidently."""

from __future__ import annotations

import numpy as np

from edge.plates.decode import Candidate
from edge.plates.detect import PlateQuad
from edge.plates.geometry import box_iou
from edge.plates.lprnet import LprnetRecognizer, lprnet_core
from edge.plates.ocr import PaddleRecognizer
from edge.plates.reading import (
    CONFIDENT,
    PlateRead,
    RegionReader,
    best_confidence,
)
from edge.plates.rectify import expand_quad, quad_size, warp_quad
from edge.plates.refine import TextLineRefiner

# (horizontal, vertical) margins around the detected quad, as fractions of its size. The
# tight one suits good detections; the loose one recovers characters a partial quad cut off.
CROP_MARGINS = ((0.04, 0.10), (0.15, 0.20))
TWO_LINE_ASPECT = 2.2  # plates narrower than this (w/h) are read as two lines


class QuadReader(RegionReader):
    """Reads the detector's quads one at a time (:meth:`read_quad`) until one reads confidently."""

    def read_region(self, img: np.ndarray, in_vehicle: bool = False) -> list[PlateRead]:
        """Plates in ``img``, most confident first (``in_vehicle`` is not used)."""
        cfg = self.cfg
        quads = self.detector.detect(img, cfg.detect_threshold, tiles=False, max_plates=cfg.max_plates)
        # Best quad first; weaker quads, then tiles, only while nothing was read confidently:
        # most images then cost one detection, one refinement and one recognition call.
        reads: list[PlateRead] = []
        for q in quads:
            if best_confidence(reads) >= CONFIDENT:
                break
            reads.append(self.read_quad(img, q))
        if cfg.tiles and best_confidence(reads) < CONFIDENT and self.detector.is_large(img):
            seen = [q.box for q in quads]
            for q in self.detector.detect(
                img, cfg.detect_threshold, tiles=True, only_tiles=True, max_plates=cfg.max_plates
            ):
                if best_confidence(reads) >= CONFIDENT:
                    break
                if all(box_iou(q.box, b) < 0.5 for b in seen):
                    reads.append(self.read_quad(img, q))
        reads = [r for r in reads if r.candidates]
        reads.sort(key=lambda r: -r.confidence)
        return reads

    def read_quad(self, img: np.ndarray, quad: PlateQuad) -> PlateRead:
        """One plate from its quad."""
        raise NotImplementedError


class CtcReader(QuadReader):
    """PP-OCRv4 recogniser ``model``; ``refiner``: the PP-OCR text detector shipped with it, which
    refines plate quads (None when the model has none)."""

    def __init__(self, base: RegionReader, model: PaddleRecognizer, refiner: TextLineRefiner | None) -> None:
        super().__init__(base.cfg, base.detector, base.formats, base.decoder)
        self.model = model
        self.refiner = refiner

    def _lines(self, img: np.ndarray, corners: np.ndarray, mx: float, my: float) -> list[list[np.ndarray]]:
        """The rectified crop as one line, plus split in two lines when the plate is squarish
        (e.g. Brazilian motorcycle plates: letters above, digits below)."""
        crop = warp_quad(img, expand_quad(corners, mx, my))
        w, h = quad_size(corners)
        out = [[crop]]
        if h > 0 and w / h < TWO_LINE_ASPECT:
            ch = crop.shape[0]
            out.append([crop[: int(ch * 0.55)], crop[int(ch * 0.45) :]])
        return out

    def _read_crops(self, crops: list[list[np.ndarray]]) -> list[Candidate]:
        outs = iter(self.model.recognize([line for crop in crops for line in crop]))
        cands: list[Candidate] = []
        for crop in crops:
            cands += self._decode([next(outs) for _ in crop])
        return cands

    def read_quad(self, img: np.ndarray, quad: PlateQuad) -> PlateRead:
        """Read one quad from two crops in one batch -- the DBNet-refined text line (or, when
        DBNet finds none, a loose crop) and the detector's own quad with tight margins -- and
        rank all their readings together: each crop fixes the other's typical failure
        (partial quad, junk from a seal or city strip)."""
        ih, iw = img.shape[:2]
        box = quad.box / np.array([iw, ih, iw, ih], dtype=np.float32)
        line = self.refiner.refine(img, quad.corners) if self.refiner is not None else None
        crops = self._lines(img, quad.corners, *CROP_MARGINS[0])
        crops += (
            self._lines(img, line, 0.0, 0.0) if line is not None else self._lines(img, quad.corners, *CROP_MARGINS[1])
        )
        return PlateRead(quad.corners, box, quad.score, self._rank(self._read_crops(crops)))


class LprnetReader(QuadReader):
    """LPRNet ``model`` (Chinese plates: its own symbols, no CTC formats)."""

    def __init__(self, base: RegionReader, model: LprnetRecognizer) -> None:
        super().__init__(base.cfg, base.detector, base.formats, base.decoder)
        self.model = model

    def read_quad(self, img: np.ndarray, quad: PlateQuad) -> PlateRead:
        """LPRNet gives no probabilities: the read's confidence is the plate detector's score."""
        ih, iw = img.shape[:2]
        box = quad.box / np.array([iw, ih, iw, ih], dtype=np.float32)
        text = self.model.read(warp_quad(img, expand_quad(quad.corners, *CROP_MARGINS[1])))
        core = lprnet_core(text)
        if not self.cfg.min_chars <= len(core) <= self.cfg.max_chars:
            return PlateRead(quad.corners, box, quad.score, [])
        return PlateRead(quad.corners, box, quad.score, [Candidate(text, float(quad.score))])
