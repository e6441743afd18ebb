"""One camera's pipeline, top to bottom: frame -> motion gate -> detector -> filters -> tracker
-> per-track attributes -> events.

``Pipeline.process(frame)`` returns the events that frame caused; it never raises for a bad
frame (the error is logged and counted), so one broken frame cannot stop a camera.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.config import AppConfig, CameraConfig
from edge.events.schema import Event, Sequencer, utc_iso
from edge.inference.model import AttributeClassifier, Classifier, Detector, LoadedModel, load_model
from edge.motion import MotionGate
from edge.plates.consensus import PlateResult
from edge.plates.stage import PlateStage
from edge.tracking import Track, Tracker
from edge.tracking.filters import filter_detections
from edge.tracking.scene import SceneChange, SceneState
from edge.tracking.zones import Zones
from edge.types import Detections, Frame

log = logging.getLogger("edge.pipeline")

START_HOLD = 1.5  # seconds a start event may wait for a full view of the vehicle
ATTRIBUTE_SAMPLES = 8  # crops classified per track: enough for a stable vote, bounded cost


@dataclass
class PipelineStats:
    """Plain counters, read by the Prometheus collector at scrape time."""

    frames_in: int = 0
    frames_inferred: int = 0
    frames_motion_skipped: int = 0
    frame_errors: int = 0
    active_tracks: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)


class Pipeline:
    """Turns one camera's frames into track events."""

    def __init__(
        self,
        camera: str,
        cfg: CameraConfig,
        app: AppConfig,
        *,
        detector: Detector | None = None,
        attributes: AttributeClassifier | None = None,
        sequencer: Sequencer | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.camera = camera
        self.cfg = cfg
        self.device_id = app.device_id
        self.stats = PipelineStats()
        self.on_inference: Callable[[str, str, float], None] | None = None
        self.detector = detector or _load(cfg.detect.model, app, Detector, progress)
        self.detector.score_threshold = min(cfg.tracker.low_score, cfg.objects.filter.min_score)
        self.attributes = attributes
        if self.attributes is None and cfg.detect.attributes_model:
            self.attributes = _load(cfg.detect.attributes_model, app, AttributeClassifier, progress)
        d = cfg.detect
        self.classifier = _load(d.classifier_model, app, Classifier, progress) if d.classifier_model else None
        self.scene = SceneState(d.classifier_min_score, d.classifier_min_frames, d.classifier_labels)
        self.gate = MotionGate(cfg.motion, cfg.masks)
        # one vehicle-type vocabulary for every model: detector labels and attribute values map into it
        self._type_of = {src: kind for kind, srcs in cfg.objects.vehicle_types.items() for src in srcs}
        self._vehicle_labels = set(self._type_of) | set(cfg.objects.vehicle_labels)
        self.tracker = Tracker(cfg.tracker)
        self.zones = Zones(dict(cfg.zones))
        self.seq = sequencer or Sequencer()
        self.last_detections = Detections()
        self.plates: PlateStage | None = None
        if cfg.plates is not None and cfg.plates.enabled:
            self.plates = PlateStage(cfg.plates, app)

    # -- the straight line -------------------------------------------------------------------
    def process(self, frame: Frame) -> list[Event]:
        """Run one sampled frame through the pipeline; returns the events it caused."""
        self.stats.frames_in += 1
        try:
            return self._process(frame)
        except Exception:  # a bad frame or a model hiccup must not stop the camera
            self.stats.frame_errors += 1
            log.exception("camera %s: frame %d failed; skipped", self.camera, frame.index)
            return []

    def close(self, now: float | None = None) -> list[Event]:
        """End every open track (end of stream, shutdown)."""
        now = time.time() if now is None else now
        events = [e for c in self.tracker.close() for e in self._end(c.track, now)]
        events += [self._state_event(c) for c in self.scene.close(now)]
        self.stats.active_tracks = 0
        self._count(events)
        return events

    def _process(self, frame: Frame) -> list[Event]:
        image = frame.image
        if image is None or image.ndim != 3 or image.shape[0] < 8 or image.shape[1] < 8:
            raise ValueError(f"unusable frame shape {getattr(image, 'shape', None)}")
        if not self.gate.should_infer(image, force=not self.tracker.settled()):
            self.stats.frames_motion_skipped += 1
            self.tracker.keep_alive(frame.capture_time)
            self.last_detections = Detections()
            return []
        dets = self.detector.detect(image)
        self.stats.frames_inferred += 1
        self._observe(self.detector)
        scene_events = self._classify_scene(image, frame.capture_time)
        dets = filter_detections(dets, self.cfg.objects, list(self.cfg.masks), self.cfg.tracker.low_score)
        dets, changes = self.tracker.update(dets, frame.capture_time)
        self.last_detections = dets
        now = frame.capture_time
        matched = [t for t in self.tracker.tracks if t.last_det >= 0]
        for t in matched:
            self._describe(t, image)
        events = scene_events + [e for c in changes if c.phase == "end" for e in self._end(c.track, now)]
        for t in matched:
            if not t.confirmed:
                continue
            zones = self.zones.of(t.last_box, t.label)
            if not t.data.get("started"):
                if self._type_pending(t, now):
                    continue
                t.data["started"] = True
                t.data["zones"] = zones
                events.append(self._event("start", t, now))
                events += self._read_plate(t, image, now)
                continue
            events += self._read_plate(t, image, now)
            if zones != t.data.get("zones") or now - t.data.get("last_event", now) >= self._interval():
                t.data["zones"] = zones
                events.append(self._event("update", t, now))
        self.stats.active_tracks = len(self.tracker.active)
        self._count(events)
        return events

    # -- helpers -----------------------------------------------------------------------------
    def _classify_scene(self, image: np.ndarray, now: float) -> list[Event]:
        """Whole-frame class on frames that were inferred (unchanged frames keep their class)."""
        if self.classifier is None:
            return []
        label, score = self.classifier.classify(image)[0]
        self._observe(self.classifier)
        return [self._state_event(c) for c in self.scene.update(label, score, now)]

    def _new_event(self, kind: str, phase: str | None, ts: float, t: Track | None = None, **fields: Any) -> Event:
        """An event of this camera: device, camera, sequence number and time filled in, plus
        the track's id, label, zones and start when it is about a track."""
        if t is not None:
            fields = {
                "track": t.id,
                "label": t.label,
                "zones": list(t.data.get("zones", [])),
                "start": utc_iso(t.first_seen),
                **fields,
            }
        return Event(
            device=self.device_id,
            camera=self.camera,
            type=kind,  # type: ignore[arg-type]
            phase=phase,  # type: ignore[arg-type]
            ts=utc_iso(ts),
            seq=self.seq.next(self.camera),
            **fields,
        )

    def _state_event(self, c: SceneChange) -> Event:
        attrs: dict[str, Any] = {"duration": round(c.duration, 2)} if c.phase == "end" else {}
        return self._new_event(
            "state", c.phase, c.at, label=c.label, score=c.score, start=utc_iso(c.since), attrs=attrs
        )

    def _end(self, t: Track, now: float) -> list[Event]:
        """End events for a finished track (with its start first if that was still held, and
        its final plate if that changed)."""
        events = [] if t.data.get("started") else [self._event("start", t, now)]
        t.data["started"] = True
        if self.plates is not None:
            result = self.plates.consensus.finish(t.id)
            if result is not None:
                events += self._plate_events(t, result, now)
        return [*events, self._event("end", t, now)]

    def _read_plate(self, t: Track, image: np.ndarray, now: float) -> list[Event]:
        """Read the plate of a vehicle track (a bounded number of times) and publish it once,
        then again only when the per-track consensus improves."""
        stage = self.plates
        if stage is None or not stage.wants(t, self._vehicle_labels, image.shape[0]):
            return []
        t0 = time.perf_counter()
        reads = stage.reader.read(image, box=t.last_box)
        if self.on_inference is not None:
            self.on_inference("plate-reader", stage.backend, time.perf_counter() - t0)
        t.data["plate_reads"] = t.data.get("plate_reads", 0) + 1
        result = stage.consensus.add(t.id, reads[0] if reads else None, now)
        if result is None:
            return []
        if reads:
            t.data["plate_box"] = [round(float(v), 4) for v in reads[0].box]
        return self._plate_events(t, result, now)

    def _plate_events(self, t: Track, result: PlateResult, now: float) -> list[Event]:
        stage = self.plates
        assert stage is not None
        fields = stage.fields(result.text)
        first = "plate" not in t.data
        t.data["plate"] = fields
        attrs: dict[str, Any] = {**fields, "conf": round(result.confidence, 3), "reads": result.reads}
        if "plate" in fields and stage.cfg.top_n > 1:
            attrs["candidates"] = [[c, round(p, 3)] for c, p in result.candidates[: stage.cfg.top_n]]
        kind = t.top_attr("type")
        if kind:
            attrs["type"] = kind
        match = stage.lists.match(result.text)
        if match is not None:
            attrs["list"] = match.list
        events = [
            self._new_event("plate", "start" if first else "update", now, t, box=t.data.get("plate_box"), attrs=attrs)
        ]
        if match is not None and match.list == "watch" and not t.data.get("watch_alerted"):
            t.data["watch_alerted"] = True
            alert = {**fields, "reason": "watchlist", "distance": match.distance}
            if kind:
                alert["type"] = kind
            events.append(self._new_event("anomaly", None, now, t, box=t.data.get("plate_box"), attrs=alert))
        return events

    def _type_pending(self, t: Track, now: float) -> bool:
        """Hold a start event (up to START_HOLD s) while the vehicle is only partly in view, so
        the type it announces is the one the track keeps."""
        if self.attributes is None or t.label not in self._vehicle_labels:
            return False
        return t.data.get("clean_samples", 0) == 0 and now - t.first_seen < START_HOLD

    def _interval(self) -> float:
        return self.cfg.tracker.update_interval if self.cfg.tracker.update_interval > 0 else -1.0

    def _describe(self, t: Track, image: np.ndarray) -> None:
        """Vote the vehicle type (and colour) of a matched track from the detector and crop."""
        t.data["best_score"] = max(t.data.get("best_score", 0.0), t.score)
        label = t.label
        if label in self._type_of:
            t.vote_attr("type", self._type_of[label], t.score)
        if self.attributes is None or label not in self._vehicle_labels or t.data.get("attr_n", 0) >= ATTRIBUTE_SAMPLES:
            return
        crop = _crop(image, t.box)
        if crop is None:
            return
        attrs = self.attributes.classify(crop)
        self._observe(self.attributes)
        t.data["attr_n"] = t.data.get("attr_n", 0) + 1
        # a box cut by the frame edge shows part of the vehicle: its vote counts less
        weight = 0.3 if _touches_edge(t.box) else 1.0
        t.data["clean_samples"] = t.data.get("clean_samples", 0) + (weight == 1.0)
        for key, (value, score) in attrs.items():
            name = "color" if key in {"color", "colour"} else key
            if name == "type":
                value = self._type_of.get(value, value)
            t.vote_attr(name, value, score * weight)

    def _event(self, phase: str, t: Track, now: float) -> Event:
        t.data["last_event"] = now
        attrs: dict[str, Any] = {}
        for key in ("type", "color"):
            value = t.top_attr(key)
            if value:
                attrs[key] = value
        attrs.update(t.data.get("plate", {}))
        if phase == "end":
            attrs["duration"] = round(t.last_seen - t.first_seen, 2)
        score = t.data.get("best_score", t.score) if phase == "end" else t.score
        ts = t.last_seen if phase == "end" else now
        return self._new_event(
            "track", phase, ts, t, score=float(score), box=[float(v) for v in t.last_box], attrs=attrs
        )

    def _observe(self, model: LoadedModel) -> None:
        if self.on_inference is not None:
            self.on_inference(model.name, model.backend_key, model.last_seconds)

    def _count(self, events: list[Event]) -> None:
        for e in events:
            self.stats.events_by_type[e.type] = self.stats.events_by_type.get(e.type, 0) + 1


def _touches_edge(xyxy: np.ndarray, margin: float = 0.01) -> bool:
    return bool(xyxy[0] <= margin or xyxy[1] <= margin or xyxy[2] >= 1 - margin or xyxy[3] >= 1 - margin)


def _crop(image: np.ndarray, xyxy: np.ndarray, min_px: int = 12) -> np.ndarray | None:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (np.clip(xyxy, 0, 1) * [w, h, w, h]).astype(int)
    if x1 - x0 < min_px or y1 - y0 < min_px:
        return None
    return image[y0:y1, x0:x1]


def _load(name: str, app: AppConfig, kind: type[Any], progress: Callable[[str], None] | None) -> Any:
    model = load_model(name, progress=progress, **app.model_options())
    if not isinstance(model, kind):
        from edge.errors import ModelError

        raise ModelError(f"model {name} is a {model.manifest.task} model, not usable as {kind.__name__}")
    return model
