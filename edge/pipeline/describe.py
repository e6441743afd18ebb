"""What vehicle a track is: a type vote (from the detector's label and the attributes model)
and a colour vote, accumulated over a bounded number of crops per track.

How crops vote (the attributes model sees one crop at a time and is often sure and wrong on a
partial view, so the vote is built to need no single crop to be right):

* each classified crop adds its whole probability vector (``vote_attr`` per value), so a track's
  value is the one with the highest mean probability, not the most argmax wins: a crop that is
  60/40 white/gray says so instead of counting as a full white vote;
* crops cut by the frame edge, small crops and weak detections are classified only until the
  first clean view (the vehicle whole, big and confident) and count ``EDGE_WEIGHT``; the budget
  of ``ATTRIBUTE_SAMPLES`` goes to clean views, which are then spread over the track;
* the crop is the detector box shrunk to the model's input size with area averaging (the
  backend's bilinear resize aliases fine texture when shrinking a 200 px crop to 72 px).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from edge.config import ObjectsConfig
from edge.inference.model import AttributeClassifier, LoadedModel
from edge.tracking import Track

START_HOLD = 1.5  # seconds a start event may wait for a full view of the vehicle
ATTRIBUTE_SAMPLES = 8  # clean crops classified per track: enough for a stable vote, bounded cost
EDGE_WEIGHT = 0.3  # a partial (edge-cut, small or weak) view votes, less, until a clean one comes
CLEAN_MIN_PX = 32  # a clean view's box is at least this many pixels on its short side
CLEAN_MIN_SCORE = 0.5  # ... and its detection at least this confident
MIN_PX = 12  # smaller boxes are not classified at all


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
        spec = attributes.manifest.input if attributes is not None else None
        self._input_size = tuple(spec.size) if spec is not None else None

    def describe(self, t: Track, image: np.ndarray) -> None:
        """Vote the vehicle type (and colour) of a track matched in ``image``."""
        t.state.best_score = max(t.state.best_score, t.score)
        label = t.label
        if label in self.type_of:
            t.vote_attr("type", self.type_of[label], t.score)
        if self.attributes is None or label not in self.vehicle_labels:
            return
        st = t.state
        h, w = image.shape[:2]
        box_px = (t.box[2] - t.box[0]) * w, (t.box[3] - t.box[1]) * h
        clean = not _touches_edge(t.box) and min(box_px) >= CLEAN_MIN_PX and t.score >= CLEAN_MIN_SCORE
        if st.clean_samples >= ATTRIBUTE_SAMPLES or (not clean and st.clean_samples > 0):
            return  # enough clean views, or a partial one after a clean one: nothing to learn
        if not clean and st.attr_samples >= ATTRIBUTE_SAMPLES:
            return  # a vehicle that never shows whole (parked at the edge, far away) costs no more
        crop = self._crop(image, t.box)
        if crop is None:
            return
        probs = self.attributes.probabilities(crop)
        if self._on_model is not None:
            self._on_model(self.attributes)
        st.attr_samples += 1
        st.clean_samples += clean
        weight = 1.0 if clean else EDGE_WEIGHT
        for key, values in probs.items():
            name = "color" if key in {"color", "colour"} else key
            for value, p in values.items():
                if name == "type":
                    value = self.type_of.get(value, value)
                t.vote_attr(name, value, p * weight)

    def type_pending(self, t: Track, now: float) -> bool:
        """Hold a start event (up to START_HOLD s) while the vehicle is only partly in view, so
        the type it announces is the one the track keeps."""
        if self.attributes is None or t.label not in self.vehicle_labels:
            return False
        return t.state.clean_samples == 0 and now - t.first_seen < START_HOLD

    def _crop(self, image: np.ndarray, xyxy: np.ndarray) -> np.ndarray | None:
        """The box as the model sees it: shrunk to its input size by area averaging."""
        h, w = image.shape[:2]
        x0, y0, x1, y1 = (np.clip(xyxy, 0, 1) * [w, h, w, h]).astype(int)
        if x1 - x0 < MIN_PX or y1 - y0 < MIN_PX:
            return None
        crop = image[y0:y1, x0:x1]
        size = self._input_size
        if size is not None and x1 - x0 > size[0] and y1 - y0 > size[1]:
            crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        return crop


def _touches_edge(xyxy: np.ndarray, margin: float = 0.01) -> bool:
    return bool(xyxy[0] <= margin or xyxy[1] <= margin or xyxy[2] >= 1 - margin or xyxy[3] >= 1 - margin)
