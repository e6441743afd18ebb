"""Task metrics for the verification report.

mAP@0.5 is a small VOC-style (all-point interpolated) AP rather than a library: torchmetrics and
pycocotools pull in torch or a compiler toolchain, far heavier than these 40 lines; the reference
"ground truth" here is the source model's own detections, so no COCO annotation format is needed.
"""

from __future__ import annotations

import numpy as np

from edge.types import Detections


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes (N,4) x (M,4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return np.asarray(inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12))


def _ap(recall: np.ndarray, precision: np.ndarray) -> float:
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    i = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[i + 1] - r[i]) * p[i + 1]))


def mean_ap(truth: list[Detections], preds: list[Detections], iou_thr: float = 0.5) -> float:
    """mAP over the classes present in ``truth`` (per image lists of the same length). 1.0 when
    ``truth`` has no objects and ``preds`` none either, 0.0 when only ``preds`` has some."""
    classes = sorted({int(c) for t in truth for c in t.class_id})
    if not classes:
        return 1.0 if not any(len(p.class_id) for p in preds) else 0.0
    aps = []
    for c in classes:
        n_true, scored = 0, []
        for t, p in zip(truth, preds):
            tb = t.xyxy[t.class_id == c]
            pm = p.class_id == c
            pb, ps = p.xyxy[pm], p.confidence[pm]
            n_true += len(tb)
            order = np.argsort(-ps)
            used = np.zeros(len(tb), bool)
            ious = iou(pb[order], tb) if len(tb) and len(pb) else np.zeros((len(pb), len(tb)))
            for k, j in enumerate(order):
                hit = False
                if len(tb):
                    m = int(ious[k].argmax())
                    if ious[k, m] >= iou_thr and not used[m]:
                        used[m], hit = True, True
                scored.append((float(ps[j]), hit))
        scored.sort(key=lambda s: -s[0])
        hits = np.array([h for _, h in scored], bool)
        tp, fp = np.cumsum(hits), np.cumsum(~hits)
        recall = tp / max(n_true, 1)
        precision = tp / np.maximum(tp + fp, 1)
        aps.append(_ap(recall, precision) if len(hits) else 0.0)
    return float(np.mean(aps))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two flattened tensors (1.0 for two zero tensors)."""
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))
