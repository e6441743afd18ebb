"""YOLOv8-style raw head: ``[1, 4 + C, N]`` with ``cx, cy, w, h`` in input pixels and class scores."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.inference.heads._labels import names
from edge.inference.heads.nms import nms
from edge.inference.preprocess import Letterbox
from edge.types import Detections


def decode(
    outputs: dict[str, np.ndarray],
    lb: Letterbox,
    head: dict[str, Any],
    labels: list[str],
    label_offset: int,
    score_threshold: float,
) -> Detections:
    """Transposes to rows if needed, picks the best class, then class-aware NMS."""
    raw = next(iter(outputs.values()))[0]
    channels = 4 + len(labels) if labels else min(raw.shape)
    if raw.shape[0] == channels and raw.shape[1] != channels:  # exported as [4 + C, N]
        raw = raw.T
    cls_scores = raw[:, 4:]
    cls = cls_scores.argmax(1).astype(np.int32)
    score = cls_scores[np.arange(len(cls)), cls]
    m = score >= score_threshold
    cxcy, wh, cls, score = raw[m, :2], raw[m, 2:4], cls[m], score[m]
    xyxy = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1)
    keep = nms(xyxy, score, cls, float(head.get("nms_iou", 0.45)), score_threshold)
    return Detections(
        lb.to_frame_normalised(xyxy[keep]), score[keep], cls[keep], names(cls[keep], labels, label_offset)
    )
