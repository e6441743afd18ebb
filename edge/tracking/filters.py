"""Object filters and masks applied to detections before tracking."""

from __future__ import annotations

import numpy as np

from edge.config import ObjectsConfig
from edge.tracking.geometry import points_in_polygon
from edge.types import Detections


def filter_detections(
    dets: Detections, objects: ObjectsConfig, masks: list[list[tuple[float, float]]], low_score: float = 0.0
) -> Detections:
    """Keep tracked labels within their area limits and outside masks.

    Detections down to ``low_score`` are kept (marked in ``data["low"]``) so the tracker can
    use them to extend existing tracks; the per-label ``min_score`` decides what may start one.
    """
    if len(dets) == 0:
        return dets
    keep = np.ones(len(dets), bool)
    track = set(objects.track)
    area = dets.area
    for i, label in enumerate(dets.labels):
        f = objects.filter_for(label)
        if track and label not in track:
            keep[i] = False
        elif not (f.min_area <= area[i] <= f.max_area):
            keep[i] = False
        elif dets.confidence[i] < min(low_score, f.min_score):
            keep[i] = False
    if masks and keep.any():
        feet = dets.bottom_center
        for poly in masks:
            keep &= ~points_in_polygon(feet, poly)
    out = dets[keep]
    out.data["low"] = np.array(
        [c < objects.filter_for(lab).min_score for c, lab in zip(out.confidence, out.labels)], bool
    )
    return out
