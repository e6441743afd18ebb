"""Draw detections and tracks on a frame (for ``edge replay --annotate``)."""

from __future__ import annotations

import cv2
import numpy as np

from edge.tracking import Track
from edge.types import Detections

_PALETTE = [
    (56, 56, 255),
    (151, 157, 255),
    (31, 112, 255),
    (29, 178, 255),
    (49, 210, 207),
    (10, 249, 72),
    (23, 204, 146),
    (134, 219, 61),
    (52, 147, 26),
    (187, 212, 0),
    (168, 153, 44),
    (255, 194, 0),
]


def draw_detections(image: np.ndarray, dets: Detections, tracks: list[Track]) -> np.ndarray:
    """A copy of ``image`` with tracked boxes (colour per track id, label, type) and untracked
    detections in grey."""
    out = image.copy()
    h, w = out.shape[:2]
    scale = np.array([w, h, w, h], np.float32)
    assert dets.tracker_id is not None
    for box, tid in zip(dets.xyxy, dets.tracker_id):
        if tid >= 0:
            continue
        x0, y0, x1, y1 = (box * scale).astype(int)
        cv2.rectangle(out, (x0, y0), (x1, y1), (160, 160, 160), 1)
    for t in tracks:
        if t.last_det < 0 or t.measured is None:
            continue
        x0, y0, x1, y1 = (t.measured * scale).astype(int)
        colour = _PALETTE[t.id % len(_PALETTE)]
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 2)
        kind = t.top_attr("type") or t.label
        text = f"#{t.id} {kind} {t.score:.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        ty = max(y0, th + 4)
        cv2.rectangle(out, (x0, ty - th - 4), (x0 + tw + 4, ty), colour, -1)
        cv2.putText(out, text, (x0 + 2, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out
