"""What vehicle a track is: a type vote (from the detector's label, a COCO detector on a few
crops, the attributes model and the vehicle's size next to the others) and a colour vote,
accumulated over a bounded number of crops per track.

Each source votes where it is good: the COCO crop typer (``crop_type.py``) at any size; the
attributes model's type only on crops of at least ``ATTR_TYPE_MIN_PX`` (it was made for
close-up barrier views and calls small far cars "truck" or "bus"); the size cue
(``size_cue.py``) only says "heavy", for boxes several times the area of the vehicles that pass
the same place; the attributes model's colour at any size, except that its "white" turns to
"gray" for a vehicle whose paint is clearly less evenly lit than this camera's other white
vehicles (``white_check.py``: metallic silver). Type sources are fused as weighted means
(``edge.tracking.evidence``), so one that runs more often does not outvote a better one.
The published type is the one with the most weight, with ``type_confidence`` = its share of
all the weight; under ``MIN_CONFIDENCE`` the type is ``unknown`` (``events.describe``).

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
from edge.pipeline.crop_type import CropTyper, wants_view
from edge.pipeline.size_cue import SizeCue
from edge.pipeline.white_check import WHITE, WhiteReference, adjusted_colours, paint_evenness
from edge.tracking import Track
from edge.tracking.evidence import HEAVY

START_HOLD = 1.5  # seconds a start event may wait for a full view of the vehicle
ATTRIBUTE_SAMPLES = 8  # clean crops classified per track: enough for a stable vote, bounded cost
EDGE_WEIGHT = 0.3  # a partial (edge-cut, small or weak) view votes, less, until a clean one comes
CLEAN_MIN_PX = 32  # a clean view's box is at least this many pixels on its short side
CLEAN_MIN_SCORE = 0.5  # ... and its detection at least this confident
MIN_PX = 12  # smaller boxes are not classified at all
ATTR_TYPE_MIN_PX = 64  # the attributes model's type counts only on crops this big (short side, px)


class VehicleDescriber:
    """Votes ``type`` and ``color`` on vehicle tracks (``Track.top_attr`` reads the result)."""

    def __init__(
        self,
        objects: ObjectsConfig,
        attributes: AttributeClassifier | None,
        on_model: Callable[[LoadedModel], None] | None = None,
        typer: CropTyper | None = None,
    ) -> None:
        # one vehicle-type vocabulary for every model: detector labels and attribute values map into it
        self.type_of = {src: kind for kind, srcs in objects.vehicle_types.items() for src in srcs}
        self.vehicle_labels = set(self.type_of) | set(objects.vehicle_labels)
        self.attributes = attributes
        self.typer = typer
        self._on_model = on_model
        spec = attributes.manifest.input if attributes is not None else None
        self._input_size = tuple(spec.size) if spec is not None else None
        self.sizes = SizeCue()  # this camera's vehicle sizes by place in the picture
        self.whites = WhiteReference()  # how evenly lit this camera's white vehicles are

    def describe(self, t: Track, image: np.ndarray) -> None:
        """Vote the vehicle type (and colour) of a track matched in ``image``."""
        t.state.best_score = max(t.state.best_score, t.score)
        label = t.label
        st = t.state
        if label in self.type_of:
            st.type_evidence.add("detector", {self.type_of[label]: t.score})
            self._publish_type(t)
        if label not in self.vehicle_labels:
            return
        h, w = image.shape[:2]
        box_px = (t.box[2] - t.box[0]) * w, (t.box[3] - t.box[1]) * h
        self._type_crop(t, image, min(box_px))
        self._size_view(t, min(box_px))
        if self.attributes is None:
            return
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
        typed_here = self.typer is None or min(box_px) >= ATTR_TYPE_MIN_PX
        for key, values in probs.items():
            name = "color" if key in {"color", "colour"} else key
            if name == "color":
                self._colour_vote(t, image, values, weight)
            elif name != "type":
                for value, p in values.items():
                    t.vote_attr(name, value, p * weight)
            elif typed_here:
                type_probs: dict[str, float] = {}
                for value, p in values.items():
                    kind = self.type_of.get(value, value)
                    type_probs[kind] = type_probs.get(kind, 0.0) + p
                st.type_evidence.add("attributes", type_probs, weight)
                self._publish_type(t)

    def _colour_vote(self, t: Track, image: np.ndarray, colours: dict[str, float], weight: float) -> None:
        """Add one crop's colour probabilities; a track the model calls white is weighed against
        the camera's other white vehicles (``white_check.py``: silver paint is less evenly lit)."""
        st = t.state
        for value, p in colours.items():
            st.colour_votes[value] = st.colour_votes.get(value, 0.0) + p * weight
        if max(colours.items(), key=lambda kv: kv[1])[0] == WHITE:
            evenness = paint_evenness(image, t.box)
            if evenness is not None:
                st.evenness_sum += evenness
                st.evenness_n += 1
        mean = st.evenness_sum / st.evenness_n if st.evenness_n else None
        white = max(st.colour_votes.items(), key=lambda kv: kv[1])[0] == WHITE
        if t.confirmed:
            self.whites.update(t.id, mean, white)
        share = self.whites.silver_share(t.id, mean) if white else 0.0
        t.attr_votes["color"] = adjusted_colours(st.colour_votes, share)

    def _type_crop(self, t: Track, image: np.ndarray, short_px: float) -> None:
        """A COCO type vote from this view when it is whole and clearly bigger than the last typed one."""
        st = t.state
        if self.typer is None:
            return
        area = _grown_view(t, short_px, st.type_views, st.type_area)
        if area is None:
            return
        found = self.typer.type_of_box(image, t.box)
        if self._on_model is not None:
            self._on_model(self.typer.detector)
        st.type_views += 1
        st.type_area = area
        st.type_evidence.add("coco", found)
        self._publish_type(t)

    def _size_view(self, t: Track, short_px: float) -> None:
        """Measure a whole, confirmed view against the other vehicles seen at the same place (a
        few views per track, as it grows), and remember it as their reference."""
        st = t.state
        area = _grown_view(t, short_px, st.size_views, st.size_area)
        if area is None:
            return
        st.size_views += 1
        st.size_area = area
        heavy = self.sizes.heavy(t.id, t.box)
        self.sizes.observe(t.id, t.box)
        if heavy is not None:
            st.type_evidence.add("size", {HEAVY: heavy})
            self._publish_type(t)

    @staticmethod
    def _publish_type(t: Track) -> None:
        """The fused type vote is what ``Track.top_attr`` and the events read."""
        t.attr_votes["type"] = t.state.type_evidence.votes()

    def type_pending(self, t: Track, now: float) -> bool:
        """Hold a start event (up to START_HOLD s) while the vehicle is only partly in view, so
        the type it announces is the one the track keeps."""
        if (self.attributes is None and self.typer is None) or t.label not in self.vehicle_labels:
            return False
        seen = t.state.clean_samples if self.typer is None else t.state.type_views
        return seen == 0 and now - t.first_seen < START_HOLD

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


def _grown_view(t: Track, short_px: float, views: int, last_area: float) -> float | None:
    """The normalised area of this view when it is worth a look: a confirmed track (tentative
    ones are mostly noise), whole in the frame, big enough, and the first view or clearly bigger
    than the last one counted (``views`` so far, the last of ``last_area``); else None."""
    if not t.confirmed or short_px < MIN_PX or _touches_edge(t.box):
        return None
    area = float((t.box[2] - t.box[0]) * (t.box[3] - t.box[1]))
    return area if wants_view(views, last_area, area) else None


def _touches_edge(xyxy: np.ndarray, margin: float = 0.01) -> bool:
    return bool(xyxy[0] <= margin or xyxy[1] <= margin or xyxy[2] >= 1 - margin or xyxy[3] >= 1 - margin)
