"""One camera's pipeline, top to bottom: frame -> motion gate -> detector -> filters -> tracker
-> per-track description, plates, zones and counting lines -> events.

``Pipeline.process(frame)`` returns the events that frame caused; it never raises for a bad
frame (the error is logged and counted), so one broken frame cannot stop a camera. Events
leave unstamped (``seq`` 0): the EventBus stamps ``device`` and ``seq``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.config import AppConfig, CameraConfig
from edge.events.schema import Event
from edge.inference.model import AttributeClassifier, Classifier, Detector, LoadedModel, load_model
from edge.inference.pool import ModelPool
from edge.motion import MotionGate
from edge.pipeline.crop_type import CropTyper
from edge.pipeline.describe import VehicleDescriber
from edge.pipeline.events import EventBuilder
from edge.pipeline.rate import DetectionRate
from edge.plates.stage import PlateStage
from edge.sources.sampling import RateDemand, resize
from edge.tracking import Track, Tracker
from edge.tracking.filters import filter_detections
from edge.tracking.lines import LineCounter
from edge.tracking.scene import SceneState
from edge.tracking.zones import ZoneOccupancy, Zones
from edge.types import Detections, Frame

log = logging.getLogger("edge.pipeline")

TRAJECTORY_MAX = 1000  # points kept per track; older ones are judged already (start waits <= 1.5 s)


ERROR_LOG_EVERY = 60.0  # s between logged frame failures of one camera (all are counted)


@dataclass
class PipelineStats:
    """Plain counters, read by the Prometheus collector at scrape time."""

    frames_in: int = 0
    frames_inferred: int = 0
    frames_motion_skipped: int = 0
    frames_rate_skipped: int = 0  # delivered at the burst rate, not due for the detector (not in frames_in)
    frame_errors: int = 0
    last_error: str = ""
    active_tracks: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)


class Pipeline:
    """Turns one camera's frames into track, plate, state, line and zone events."""

    def __init__(
        self,
        camera: str,
        cfg: CameraConfig,
        app: AppConfig,
        *,
        detector: Detector | None = None,
        attributes: AttributeClassifier | None = None,
        progress: Callable[[str], None] | None = None,
        video_origin: float | None = None,
        pool: ModelPool | None = None,
        demand: RateDemand | None = None,
    ) -> None:
        """``video_origin`` (epoch seconds of the video's first frame, replays only) makes
        events carry ``pos``, their position in the video. ``pool``: where the models load (the
        run's; a library caller without one: the process's default pool). ``demand``: shared
        with this camera's reader, so it delivers burst-rate frames only while a track needs them."""
        self.camera = camera
        self.cfg = cfg
        self.stats = PipelineStats()
        self._last_error_log = float("-inf")
        self._last_classified = -1  # time slot of the last whole-frame classification
        self.on_inference: Callable[[str, str, float], None] | None = None
        load = _Loader(app, progress, pool)
        self.detector = detector or load(cfg.detect.model, Detector)
        self.detector.score_threshold = min(cfg.tracker.low_score, cfg.objects.filter.min_score)
        if attributes is None and cfg.detect.attributes_model:
            attributes = load(cfg.detect.attributes_model, AttributeClassifier)
        typer = None
        if cfg.detect.type_model:
            type_of = {src: kind for kind, srcs in cfg.objects.vehicle_types.items() for src in srcs}
            typer = CropTyper(load(cfg.detect.type_model, Detector), type_of)
        self.describer = VehicleDescriber(cfg.objects, attributes, self._observe, typer)
        d = cfg.detect
        self.classifier = load(d.classifier_model, Classifier) if d.classifier_model else None
        self.scene = SceneState(d.classifier_min_score, d.classifier_min_frames, d.classifier_labels)
        self.gate = MotionGate(cfg.motion, cfg.masks)
        self.tracker = Tracker(cfg.tracker)
        self.zones = Zones(dict(cfg.zones))
        self.occupancy = ZoneOccupancy(dict(cfg.zones))
        self.lines = LineCounter(dict(cfg.lines))
        self.rate = DetectionRate(cfg.detect, self.lines, demand)
        self.events = EventBuilder(camera, video_origin)
        self.last_detections = Detections()
        self.plates: PlateStage | None = None
        if cfg.plates is not None and cfg.plates.enabled:
            self.plates = PlateStage(cfg.plates, app, self.describer.vehicle_labels, pool=pool)

    # -- the straight line -------------------------------------------------------------------
    def wants(self, frame: Frame) -> bool:
        """False for a frame between detector frames (the reader delivers at the burst rate)
        that nothing else needs: a caller may drop it without a processing turn. Counted in
        ``stats.frames_rate_skipped``."""
        if self.classifier is not None or self.rate.due(frame.capture_time, self.tracker.tracks):
            return True
        self.stats.frames_rate_skipped += 1
        return False

    def process(self, frame: Frame) -> list[Event]:
        """Run one sampled frame through the pipeline; returns the events it caused."""
        if not self.wants(frame):
            return []
        if not self.rate.due(frame.capture_time, self.tracker.tracks):
            # between detector frames: only the scene classifier, at its own rate, runs
            self.stats.frames_rate_skipped += 1
            return self._guarded(self._classify_between, frame)
        self.rate.ran(frame.capture_time)
        self.stats.frames_in += 1
        events = self._guarded(self._process, frame)
        self.rate.watch(frame.capture_time, self.tracker.tracks)
        return events

    def _guarded(self, step: Callable[[Frame], list[Event]], frame: Frame) -> list[Event]:
        """``step(frame)``, with a failure logged (rate-limited) and counted instead of raised."""
        try:
            return step(frame)
        except Exception as err:  # a bad frame or a model hiccup must not stop the camera
            self.stats.frame_errors += 1
            self.stats.last_error = f"{type(err).__name__}: {err}"
            mono = time.monotonic()
            if mono - self._last_error_log >= ERROR_LOG_EVERY:  # a broken model fails every frame
                self._last_error_log = mono
                log.exception(
                    "camera %s: frame %d failed (%d so far); skipped", self.camera, frame.index, self.stats.frame_errors
                )
            return []

    def close(self, now: float | None = None) -> list[Event]:
        """End every open track (end of stream, shutdown)."""
        now = time.time() if now is None else now
        events = [e for t in self.tracker.close() for e in self._end(t, now)]
        events += [self.events.state(c) for c in self.scene.close(now)]
        self.stats.active_tracks = 0
        self._count(events)
        return events

    def _image(self, frame: Frame) -> np.ndarray:
        full = frame.image
        if full is None or full.ndim != 3 or full.shape[0] < 8 or full.shape[1] < 8:
            raise ValueError(f"unusable frame shape {getattr(full, 'shape', None)}")
        # the reader delivers native frames to cameras that crop plates from them (a no-op for the rest)
        return resize(full, self.cfg.detect.width, self.cfg.detect.height)

    def _classify_between(self, frame: Frame) -> list[Event]:
        return self._classify_scene(self._image(frame), frame.capture_time)

    def _process(self, frame: Frame) -> list[Event]:
        full, now = frame.image, frame.capture_time
        image = self._image(frame)
        # the whole-frame classifier runs at its own rate, motion or not: "no taxi" is a still scene
        events = self._classify_scene(image, now)
        if not self.gate.should_infer(image, force=not self.tracker.settled()):
            self.stats.frames_motion_skipped += 1
            self.tracker.keep_alive(now)
            self.last_detections = Detections()
            return events
        dets = self.detector.detect(image)
        self.stats.frames_inferred += 1
        self._observe(self.detector)
        dets = filter_detections(dets, self.cfg.objects, list(self.cfg.masks), self.cfg.tracker.low_score)
        dets, ended = self.tracker.update(dets, now)
        self.last_detections = dets
        matched = [t for t in self.tracker.tracks if t.last_det >= 0]
        for t in matched:
            self.describer.describe(t, image)
            _follow(t, now)
        for t in ended:
            events += self._end(t, now)
        for t in matched:
            if t.confirmed:  # boxes are normalised: plates are cropped from the full-resolution frame
                events += self._confirmed_track(t, full, now)
        self.stats.active_tracks = len(self.tracker.active)
        self._count(events)
        return events

    def _confirmed_track(self, t: Track, image: np.ndarray, now: float) -> list[Event]:
        """Events of one matched, confirmed track: its start (once its type is known), plate
        reads (from ``image``, the frame as delivered), and an update when its zones change or
        every ``update_interval`` seconds."""
        zones = self.zones.of(t.last_box, t.label)
        st = t.state
        if not st.started:
            if self.describer.type_pending(t, now):
                return []
            st.started, st.zones = True, zones
            events = [self._track_event("start", t, now), *self._geometry(t, zones, now)]
            return events + self._read_plate(t, image, now)
        events = self._read_plate(t, image, now)
        last = st.last_event if st.last_event is not None else now
        if zones != st.zones or now - last >= self._interval():
            st.zones = zones
            events.append(self._track_event("update", t, now))
        return events + self._geometry(t, zones, now)

    def _geometry(self, t: Track, zones: list[str], now: float) -> list[Event]:
        """Zone enter/leave events and line crossings of a started track."""
        events = [self.events.zone(t, c, self.cfg.zones.get(c.zone)) for c in self.occupancy.update(t, zones, now)]
        if self.lines:
            events += [self.events.line(t, c, self.cfg.lines[c.line]) for c in self.lines.crossings(t)]
        return events

    def _read_plate(self, t: Track, image: np.ndarray, now: float) -> list[Event]:
        """A plate event when the track's plate is new or improved."""
        if self.plates is None:
            return []
        update = self.plates.observe(t, image, now)
        if self.plates.last_read_seconds is not None and self.on_inference is not None:
            self.on_inference("plate-reader", self.plates.backend, self.plates.last_read_seconds)
        return [] if update is None else [self.events.plate(t, update, now)]

    def _end(self, t: Track, now: float) -> list[Event]:
        """End events for a finished track (with its start first if that was still held, and
        its final plate if that changed)."""
        events = [] if t.state.started else [self._track_event("start", t, now)]
        t.state.started = True
        if self.lines:  # the last stretch of its path (or all of it, if its start was held)
            events += [self.events.line(t, c, self.cfg.lines[c.line]) for c in self.lines.crossings(t)]
        if self.plates is not None:
            update = self.plates.finish(t)
            if update is not None:
                events.append(self.events.plate(t, update, now))
        events += [self.events.zone(t, c, self.cfg.zones.get(c.zone)) for c in self.occupancy.leave_all(t, t.last_seen)]
        return [*events, self._track_event("end", t, now)]

    def _track_event(self, phase: str, t: Track, now: float) -> Event:
        t.state.last_event = now
        return self.events.track(phase, t, now)

    def _classify_scene(self, image: np.ndarray, now: float) -> list[Event]:
        """Whole-frame class at ``detect.classifier_fps`` (default: every sampled frame)."""
        if self.classifier is None:
            return []
        fps = self.cfg.detect.classifier_fps
        if fps is None and self.rate.burst is not None:  # frames come faster than detect.fps
            fps = self.cfg.detect.fps
        if fps is not None:  # one per slot of 1/fps s: no drift when frames come at uneven times
            slot = math.floor(now * fps)
            if slot <= self._last_classified:
                return []
            self._last_classified = slot
        label, score = self.classifier.classify(image)[0]
        self._observe(self.classifier)
        return [self.events.state(c) for c in self.scene.update(label, score, now)]

    def _interval(self) -> float:
        return self.cfg.tracker.update_interval if self.cfg.tracker.update_interval > 0 else -1.0

    def _observe(self, model: LoadedModel) -> None:
        if self.on_inference is not None:
            self.on_inference(model.name, model.backend_key, model.last_seconds)

    def _count(self, events: list[Event]) -> None:
        for e in events:
            self.stats.events_by_type[e.type] = self.stats.events_by_type.get(e.type, 0) + 1


def _follow(t: Track, now: float) -> None:
    """Add the matched track's bottom centre to its trajectory (kept bounded)."""
    box = t.last_box
    st = t.state
    st.trajectory.append((now, float(box[0] + box[2]) / 2, float(box[3])))
    excess = len(st.trajectory) - TRAJECTORY_MAX
    if excess > 0:
        del st.trajectory[:excess]
        st.judged = max(0, st.judged - excess)


@dataclass(frozen=True)
class _Loader:
    """Loads a pipeline's models with the app's options into one pool, checking each one's kind."""

    app: AppConfig
    progress: Callable[[str], None] | None
    pool: ModelPool | None

    def __call__(self, name: str, kind: type[Any]) -> Any:
        model = load_model(name, progress=self.progress, pool=self.pool, **self.app.model_options())
        if not isinstance(model, kind):
            from edge.errors import ModelError

            raise ModelError(f"model {name} is a {model.manifest.task} model, not usable as {kind.__name__}")
        return model
