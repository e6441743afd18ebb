"""YOLOX raw head: per anchor ``cx, cy, w, h`` (grid offsets, log sizes), objectness, class scores."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from edge.inference.heads.base import HeadContext
from edge.inference.heads.nms import nms
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


def decode(outputs: Mapping[str, np.ndarray], ctx: HeadContext) -> Detections:
    """Grid decode, score = objectness * class score, then class-aware NMS."""
    raw = next(iter(outputs.values())).reshape(
        -1, 5 + len(ctx.labels) if ctx.labels else next(iter(outputs.values())).shape[-1]
    )
    grid, stride = _grid(ctx.letterbox.in_w, ctx.letterbox.in_h, ctx.params.strides)
    cxcy = (raw[:, :2] + grid) * stride
    wh = np.exp(np.clip(raw[:, 2:4], -10, 10)) * stride
    cls_scores = raw[:, 5:] * raw[:, 4:5]
    cls = cls_scores.argmax(1).astype(np.int32)
    score = cls_scores[np.arange(len(cls)), cls]
    m = score >= ctx.score_threshold
    cxcy, wh, cls, score = cxcy[m], wh[m], cls[m], score[m]
    xyxy = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1)
    keep = nms(xyxy, score, cls, ctx.params.nms_iou, ctx.score_threshold)
    return ctx.detections(xyxy[keep], score[keep], cls[keep])
