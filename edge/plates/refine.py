"""Refine a plate quad with PP-OCRv4 text detection (DBNet).

LPD-YuNet was trained on Chinese plates; on other plates its quad is sometimes only part of the
plate (a few characters) or includes the city strip. We warp a generously expanded area
around the quad, let DBNet find the text lines in it, and return the quad of the main line
(the largest, joined with same-height neighbours on the same line), mapped back to the image.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from edge.inference.backends import Backend
from edge.plates.rectify import expand_quad, quad_size

log = logging.getLogger("edge.plates.refine")

SEARCH_MARGIN = (0.3, 0.6)  # expand the quad by this much of its width / height on each side
DET_HEIGHT = 96  # DBNet input height for the search area (width keeps the aspect, /32)
BIN_THRESHOLD = 0.3  # DBNet probability threshold, as in PaddleOCR
UNCLIP = 1.6  # DBNet predicts shrunk text kernels; grow them back (PaddleOCR uses ~1.5-2)


class TextLineRefiner:
    """``refine(image, quad) -> quad | None`` using a PP-OCR DBNet text detector."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.input_name = backend.inputs[0].name

    def refine(self, image: np.ndarray, corners: np.ndarray) -> np.ndarray | None:
        """The main text line's quad (tl, tr, br, bl, image pixels) near ``corners``, or None."""
        mx, my = SEARCH_MARGIN
        area = expand_quad(corners, mx, my)
        w, h = quad_size(area)
        if w < 8 or h < 4:
            return None
        W = int(min(640, max(64, round(DET_HEIGHT * w / h / 32) * 32)))
        H = DET_HEIGHT
        dst = np.array([[0, 0], [W, 0], [W, H], [0, H]], dtype=np.float32)
        m = cv2.getPerspectiveTransform(area.astype(np.float32), dst)
        patch = cv2.warpPerspective(image, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # PaddleOCR det normalisation: ImageNet mean/std on the BGR image scaled to 0..1
        x = (patch.astype(np.float32) / 255.0 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)
        prob = next(
            iter(self.backend.infer({self.input_name: x.transpose(2, 0, 1)[None].astype(np.float32)}).values())
        )[0, 0]
        mask = (prob > BIN_THRESHOLD).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        if n <= 1:
            return None
        # the original quad occupies this box of the patch
        qx0, qx1 = W * mx / (1 + 2 * mx), W * (1 + mx) / (1 + 2 * mx)
        qy0, qy1 = H * my / (1 + 2 * my), H * (1 + my) / (1 + 2 * my)
        comps = []
        for i in range(1, n):
            x0, y0, cw, ch, a = stats[i]
            cx, cy = x0 + cw / 2, y0 + ch / 2
            if a < 12 or ch < 3:
                continue
            comps.append((a, x0, y0, x0 + cw, y0 + ch, qx0 <= cx <= qx1 and qy0 <= cy <= qy1))
        central = [c for c in comps if c[5]]
        if not central:
            return None
        main = max(central, key=lambda c: c[0])
        x0, y0, x1, y1 = main[1:5]
        mh = y1 - y0
        for c in comps:  # join pieces of the same line (e.g. split at a dash or a seal)
            ov = min(y1, c[4]) - max(y0, c[2])
            if c is not main and (c[4] - c[2]) >= 0.6 * mh and ov >= 0.5 * min(mh, c[4] - c[2]):
                x0, y0, x1, y1 = min(x0, c[1]), min(y0, c[2]), max(x1, c[3]), max(y1, c[4])
        # unclip: DBNet's kernels are shrunk by about area * (1 - 0.4^2) / perimeter
        bw, bh = x1 - x0, y1 - y0
        d = UNCLIP * bw * bh / (2 * (bw + bh))
        box = np.array([[x0 - d, y0 - d], [x1 + d, y0 - d], [x1 + d, y1 + d], [x0 - d, y1 + d]], dtype=np.float32)
        inv = np.linalg.inv(m)
        pts = cv2.perspectiveTransform(box[None], inv)[0]
        return pts.astype(np.float32)
