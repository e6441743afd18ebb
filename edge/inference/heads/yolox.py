"""YOLOX raw head: per anchor ``cx, cy, w, h`` (grid offsets, log sizes), objectness, class scores."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from edge.inference.heads._labels import names
from edge.inference.heads.nms import nms
from edge.inference.preprocess import Letterbox
from edge.types import Detections


@lru_cache(maxsize=8)
def _grid(in_w: int, in_h: int, strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    grids, steps = [], []
    for s in strides:
        gy, gx = np.meshgrid(np.arange(in_h // s), np.arange(in_w // s), indexing="ij")
        g = np.stack([gx, gy], axis=-1).reshape(-1, 2)
        grids.append(g)
        steps.append(np.full((len(g), 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(steps).astype(np.float32)


def decode(
    outputs: dict[str, np.ndarray],
    lb: Letterbox,
    head: dict[str, Any],
    labels: list[str],
    label_offset: int,
    score_threshold: float,
) -> Detections:
    """Grid decode, score = objectness * class score, then class-aware NMS."""
    raw = next(iter(outputs.values())).reshape(
        -1, 5 + len(labels) if labels else next(iter(outputs.values())).shape[-1]
    )
    grid, stride = _grid(lb.in_w, lb.in_h, tuple(head.get("strides", (8, 16, 32))))
    cxcy = (raw[:, :2] + grid) * stride
    wh = np.exp(np.clip(raw[:, 2:4], -10, 10)) * stride
    cls_scores = raw[:, 5:] * raw[:, 4:5]
    cls = cls_scores.argmax(1).astype(np.int32)
    score = cls_scores[np.arange(len(cls)), cls]
    m = score >= score_threshold
    cxcy, wh, cls, score = cxcy[m], wh[m], cls[m], score[m]
    xyxy = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1)
    keep = nms(xyxy, score, cls, float(head.get("nms_iou", 0.45)), score_threshold)
    xyxy, score, cls = xyxy[keep], score[keep], cls[keep]
    return Detections(lb.to_frame_normalised(xyxy), score, cls, names(cls, labels, label_offset))
