"""What vehicle a track is: a type vote (from the detector's label and the attributes model)
and a colour vote, accumulated over a bounded number of crops per track."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edge.config import ObjectsConfig
from edge.inference.model import AttributeClassifier, LoadedModel
from edge.tracking import Track

START_HOLD = 1.5  # seconds a start event may wait for a full view of the vehicle
ATTRIBUTE_SAMPLES = 8  # crops classified per track: enough for a stable vote, bounded cost
EDGE_WEIGHT = 0.3  # a box cut by the frame edge shows part of the vehicle: its vote counts less


class VehicleDescriber:
    """Votes ``type`` and ``color`` on vehicle tracks (``Track.top_attr`` reads the result)."""

    def __init__(
        self,
        objects: ObjectsConfig,
        attributes: AttributeClassifier | None,
        on_model: Callable[[LoadedModel], None] | None = None,
    ) -> None:
        # one vehicle-type vocabulary for every model: detector labels and attribute values map into it
        self.type_of = {src: kind for kind, srcs in objects.vehicle_types.items() for src in srcs}
        self.vehicle_labels = set(self.type_of) | set(objects.vehicle_labels)
        self.attributes = attributes
        self._on_model = on_model

    def describe(self, t: Track, image: np.ndarray) -> None:
        """Vote the vehicle type (and colour) of a track matched in ``image``."""
        t.state.best_score = max(t.state.best_score, t.score)
        label = t.label
        if label in self.type_of:
            t.vote_attr("type", self.type_of[label], t.score)
        if self.attributes is None or label not in self.vehicle_labels or t.state.attr_samples >= ATTRIBUTE_SAMPLES:
            return
        crop = _crop(image, t.box)
        if crop is None:
            return
        attrs = self.attributes.classify(crop)
        if self._on_model is not None:
            self._on_model(self.attributes)
        t.state.attr_samples += 1
        weight = EDGE_WEIGHT if _touches_edge(t.box) else 1.0
        t.state.clean_samples += weight == 1.0
        for key, (value, score) in attrs.items():
            name = "color" if key in {"color", "colour"} else key
            if name == "type":
                value = self.type_of.get(value, value)
            t.vote_attr(name, value, score * weight)

    def type_pending(self, t: Track, now: float) -> bool:
        """Hold a start event (up to START_HOLD s) while the vehicle is only partly in view, so
        the type it announces is the one the track keeps."""
        if self.attributes is None or t.label not in self.vehicle_labels:
            return False
        return t.state.clean_samples == 0 and now - t.first_seen < START_HOLD


def _touches_edge(xyxy: np.ndarray, margin: float = 0.01) -> bool:
    return bool(xyxy[0] <= margin or xyxy[1] <= margin or xyxy[2] >= 1 - margin or xyxy[3] >= 1 - margin)


def _crop(image: np.ndarray, xyxy: np.ndarray, min_px: int = 12) -> np.ndarray | None:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (np.clip(xyxy, 0, 1) * [w, h, w, h]).astype(int)
    if x1 - x0 < min_px or y1 - y0 < min_px:
        return None
    return image[y0:y1, x0:x1]
