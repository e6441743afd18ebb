"""TFLite SSD with the ``TFLite_Detection_PostProcess`` op: boxes, classes, scores, count."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.inference.heads._labels import names
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
    """Outputs are already NMS'd by the op; boxes are (ymin, xmin, ymax, xmax) normalised to the input."""
    boxes, classes, scores, count = (v for _, v in sorted(outputs.items(), key=lambda kv: kv[0]))
    n = int(np.asarray(count).reshape(-1)[0])
    boxes, classes, scores = boxes.reshape(-1, 4)[:n], classes.reshape(-1)[:n], scores.reshape(-1)[:n]
    keep = scores >= score_threshold
    yxyx = boxes[keep]
    xyxy_in = np.stack([yxyx[:, 1] * lb.in_w, yxyx[:, 0] * lb.in_h, yxyx[:, 3] * lb.in_w, yxyx[:, 2] * lb.in_h], 1)
    cls = classes[keep].astype(np.int32)
    return Detections(lb.to_frame_normalised(xyxy_in), scores[keep], cls, names(cls, labels, label_offset))
