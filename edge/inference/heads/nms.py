"""Class-aware NMS via OpenCV's ``dnn.NMSBoxesBatched`` (a well-kept C++ implementation)."""

from __future__ import annotations

import cv2
import numpy as np


def nms(xyxy: np.ndarray, scores: np.ndarray, class_id: np.ndarray, iou: float, score: float) -> np.ndarray:
    """Indices kept after per-class non-maximum suppression."""
    if len(xyxy) == 0:
        return np.zeros((0,), np.int64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), class_id.tolist(), score, iou)
    return np.asarray(keep, dtype=np.int64).reshape(-1)
