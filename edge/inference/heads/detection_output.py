"""Open Model Zoo ``DetectionOutput``: ``[1,1,N,7]`` rows ``[image_id, label, conf, x0, y0, x1, y1]``."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge.inference.heads.base import HeadContext
from edge.types import Detections


def decode(outputs: Mapping[str, np.ndarray], ctx: HeadContext) -> Detections:
    """Rows after the first ``image_id < 0`` are padding."""
    rows = next(iter(outputs.values())).reshape(-1, 7)
    end = np.flatnonzero(rows[:, 0] < 0)
    rows = rows[: end[0]] if len(end) else rows
    rows = rows[rows[:, 2] >= ctx.score_threshold]
    lb = ctx.letterbox
    xyxy_in = rows[:, 3:7] * np.array([lb.in_w, lb.in_h, lb.in_w, lb.in_h], np.float32)
    cls = rows[:, 1].astype(np.int32)
    return ctx.detections(xyxy_in, rows[:, 2], cls)
