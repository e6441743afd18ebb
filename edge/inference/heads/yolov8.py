"""YOLOv8-style raw head: ``[1, 4 + C, N]`` with ``cx, cy, w, h`` in input pixels and class scores."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge.inference.heads.base import HeadContext
from edge.inference.heads.nms import nms
from edge.types import Detections


def decode(outputs: Mapping[str, np.ndarray], ctx: HeadContext) -> Detections:
    """Transposes to rows if needed, picks the best class, then class-aware NMS."""
    raw = next(iter(outputs.values()))[0]
    channels = 4 + len(ctx.labels) if ctx.labels else min(raw.shape)
    if raw.shape[0] == channels and raw.shape[1] != channels:  # exported as [4 + C, N]
        raw = raw.T
    cls_scores = raw[:, 4:]
    cls = cls_scores.argmax(1).astype(np.int32)
    score = cls_scores[np.arange(len(cls)), cls]
    m = score >= ctx.score_threshold
    cxcy, wh, cls, score = raw[m, :2], raw[m, 2:4], cls[m], score[m]
    xyxy = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1)
    keep = nms(xyxy, score, cls, ctx.params.nms_iou, ctx.score_threshold)
    return ctx.detections(xyxy[keep], score[keep], cls[keep])
