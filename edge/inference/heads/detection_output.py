"""Open Model Zoo ``DetectionOutput``: ``[1,1,N,7]`` rows ``[image_id, label, conf, x0, y0, x1, y1]``."""

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
    """Rows after the first ``image_id < 0`` are padding."""
    rows = next(iter(outputs.values())).reshape(-1, 7)
    end = np.flatnonzero(rows[:, 0] < 0)
    rows = rows[: end[0]] if len(end) else rows
    rows = rows[rows[:, 2] >= score_threshold]
    xyxy_in = rows[:, 3:7] * np.array([lb.in_w, lb.in_h, lb.in_w, lb.in_h], np.float32)
    cls = rows[:, 1].astype(np.int32)
    return Detections(lb.to_frame_normalised(xyxy_in), rows[:, 2], cls, names(cls, labels, label_offset))
