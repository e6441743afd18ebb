"""Small geometry helpers shared by detection, rectification and the benchmark."""

from __future__ import annotations

import numpy as np


def quad_to_box(quad: np.ndarray) -> np.ndarray:
    """Axis-aligned ``xyxy`` box around a (4, 2) quad."""
    q = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    return np.array([q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()], dtype=np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``xyxy`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression over ``xyxy`` boxes; returns kept indices, best first."""
    order = list(np.argsort(-scores))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        order = [j for j in order if box_iou(boxes[i], boxes[j]) < iou_threshold]
    return keep


def order_corners(quad: np.ndarray) -> np.ndarray:
    """Return corners as top-left, top-right, bottom-right, bottom-left (image coordinates)."""
    q = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    s = q.sum(axis=1)
    d = q[:, 0] - q[:, 1]
    tl, br = q[np.argmin(s)], q[np.argmax(s)]
    tr, bl = q[np.argmax(d)], q[np.argmin(d)]
    out = np.stack([tl, tr, br, bl])
    if len({tuple(p) for p in out.tolist()}) < 4:  # degenerate quad: fall back to its box
        x0, y0, x1, y1 = quad_to_box(q)
        out = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)
    return out
