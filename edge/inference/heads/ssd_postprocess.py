"""TFLite SSD with the ``TFLite_Detection_PostProcess`` op: boxes, classes, scores, count."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge.inference.heads.base import HeadContext
from edge.types import Detections


def decode(outputs: Mapping[str, np.ndarray], ctx: HeadContext) -> Detections:
    """Outputs are already NMS'd by the op; boxes are (ymin, xmin, ymax, xmax) normalised to the input."""
    boxes, classes, scores, count = (v for _, v in sorted(outputs.items(), key=lambda kv: kv[0]))
    n = int(np.asarray(count).reshape(-1)[0])
    boxes, classes, scores = boxes.reshape(-1, 4)[:n], classes.reshape(-1)[:n], scores.reshape(-1)[:n]
    keep = scores >= ctx.score_threshold
    yxyx, lb = boxes[keep], ctx.letterbox
    xyxy_in = np.stack([yxyx[:, 1] * lb.in_w, yxyx[:, 0] * lb.in_h, yxyx[:, 3] * lb.in_w, yxyx[:, 2] * lb.in_h], 1)
    cls = classes[keep].astype(np.int32)
    return ctx.detections(xyxy_in, scores[keep], cls)
