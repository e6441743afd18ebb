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


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, top_k: int | None = None) -> list[int]:
    """Greedy non-maximum suppression over ``xyxy`` boxes; returns kept indices, best first
    (at most ``top_k``). Vectorised: one IoU row per kept box."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores), kind="stable")
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    keep: list[int] = []
    while order.size and (top_k is None or len(keep) < top_k):
        i, rest = int(order[0]), order[1:]
        keep.append(i)
        iw = np.clip(np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]), 0, None)
        ih = np.clip(np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]), 0, None)
        inter = iw * ih
        union = area[i] + area[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou < iou_threshold]
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
