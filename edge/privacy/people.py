"""Person boxes for the privacy layer, from a person-capable detector (run per picture that
leaves the device, not per frame): ``person-vehicle-bike-detection-crossroad-0078`` by default
(OpenVINO), or a COCO detector such as ``yolox-nano-coco``."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.errors import ModelError
from edge.privacy.check import PERSON_LABELS
from edge.types import Detections

PERSON_DETECTOR = "person-vehicle-bike-detection-crossroad-0078"
SCORE = 0.15  # low: a missed person leaves unmasked; a false box only masks what the model calls a person


def person_boxes(dets: Detections | None, width: int, height: int, min_score: float = SCORE) -> np.ndarray:
    """Pixel xyxy boxes (N,4 float32) of the people in normalised ``dets``."""
    if dets is None or len(dets) == 0:
        return np.zeros((0, 4), np.float32)
    keep = np.array([lbl in PERSON_LABELS for lbl in dets.labels]) & (dets.confidence >= min_score)
    return dets.xyxy[keep] * np.array([width, height, width, height], np.float32)


class PersonDetector:
    """``boxes(image)``: the people a detector finds in a BGR image, as pixel boxes."""

    def __init__(self, model: Any, min_score: float = SCORE) -> None:
        if not PERSON_LABELS & set(getattr(model, "labels", ())):
            raise ModelError(f"model {getattr(model, 'name', model)} has no person label: it cannot find people")
        model.score_threshold = min(float(getattr(model, "score_threshold", min_score)), min_score)
        self.model, self.min_score = model, min_score

    @classmethod
    def load(cls, name: str = PERSON_DETECTOR, **options: Any) -> PersonDetector:
        """Pull and load detector ``name`` (``load_model`` options: threads, cache_dir, mirror...)."""
        from edge.inference.model import load_model

        return cls(load_model(name, **options))

    def boxes(self, image: np.ndarray) -> np.ndarray:
        """Pixel xyxy boxes of the people in ``image``."""
        h, w = image.shape[:2]
        return person_boxes(self.model.detect(image), w, h, self.min_score)
