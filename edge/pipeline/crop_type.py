"""Vehicle type from a COCO detector run on a crop around the track: the evidence that is good
at a distance.

The attributes model (made for close-up barrier views) calls small far cars "truck" or "bus";
a COCO detector (car, bus, truck, motorcycle, bicycle) run on the vehicle with some context
around it, scaled up to its input, tells them apart at 20-40 px. It runs on a few views per
track (the first whole one, then only when the vehicle has grown clearly bigger), so its cost
follows the number of vehicles, not the frame rate.
"""

from __future__ import annotations

import numpy as np

from edge.inference.model import Detector
from edge.tracking.geometry import iou_matrix

CONTEXT = 2.0  # the crop is this many times the box's longer side, centred on it (square)
MIN_CROP_PX = 320  # ... and at least this wide: the model sees small vehicles near its own scale (416), not blown up
MATCH_IOU = 0.3  # the crop detection that is the track's vehicle overlaps its box this much
SCORE_FLOOR = 0.2  # detections below this say nothing
MAX_VIEWS = 3  # crops typed per track
GROWTH = 1.6  # a further view only once the box area grew this much since the last typed view


def wants_view(views: int, last_area: float, area: float) -> bool:
    """Whether a clean view of ``area`` (normalised) is worth a look after ``views`` views, the
    last of ``last_area``: the first one, then up to MAX_VIEWS as the vehicle grows clearly bigger."""
    return views == 0 or (views < MAX_VIEWS and area >= last_area * GROWTH)


class CropTyper:
    """Types one vehicle crop with a COCO detector; labels map through ``type_of``."""

    def __init__(self, detector: Detector, type_of: dict[str, str]) -> None:
        self.detector = detector
        self.type_of = type_of
        detector.score_threshold = SCORE_FLOOR

    def type_of_box(self, image: np.ndarray, box: np.ndarray) -> dict[str, float]:
        """Type scores of the vehicle in normalised ``box`` of ``image`` (empty: not found).

        Every vehicle-class detection on the vehicle counts with its score: the detector's NMS
        keeps one box per class, so a box truck can come back as car 0.52 and truck 0.37, and
        the vote should say it is nearly a tie rather than "car"."""
        h, w = image.shape[:2]
        x0, y0, x1, y1 = (np.asarray(box, np.float64) * [w, h, w, h]).tolist()
        side = max(max(x1 - x0, y1 - y0) * CONTEXT, MIN_CROP_PX)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        # a square window, shifted (not cut) to stay inside the frame where it can
        left = int(round(min(max(cx - side / 2, 0), max(w - side, 0))))
        top = int(round(min(max(cy - side / 2, 0), max(h - side, 0))))
        right, bottom = min(w, left + int(side)), min(h, top + int(side))
        crop = image[top:bottom, left:right]
        if crop.shape[0] < 8 or crop.shape[1] < 8:
            return {}
        dets = self.detector.detect(crop)
        keep = [i for i, label in enumerate(dets.labels) if label in self.type_of]
        if not keep:
            return {}
        cw, ch = right - left, bottom - top
        target = np.array([[(x0 - left) / cw, (y0 - top) / ch, (x1 - left) / cw, (y1 - top) / ch]], np.float32)
        iou = iou_matrix(target, dets.xyxy[keep])[0]
        scores: dict[str, float] = {}
        for i, overlap in zip(keep, iou):
            if overlap >= MATCH_IOU:
                kind = self.type_of[dets.labels[i]]
                scores[kind] = max(scores.get(kind, 0.0), float(dets.confidence[i]))
        return scores
