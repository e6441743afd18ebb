"""``edge replay``: the whole pipeline on a video file, as fast as possible, with no frame dropped.

video -> sampled frames -> pipeline -> EventBus -> sinks (a JSON-lines file and/or a callback),
built by the same builder as ``edge run``'s (:func:`edge.app.delivery.build_bus`), so replayed
events are stamped (``device``, ``seq``) and can be fed to processors (the rule engine) exactly
like live ones. Optionally an annotated video.

Time: ``capture_time = start_time + pts``, so every event has ``ts = start_time + pos`` and two
replays with the same ``start_time`` produce the same events apart from their ids.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from tqdm import tqdm

from edge.annotate import AnnotatedVideo, snapshot
from edge.app.delivery import build_bus
from edge.app.models import make_pool
from edge.config import AppConfig, CameraConfig
from edge.errors import EdgeError, SourceError
from edge.events.bus import Processor
from edge.events.schema import Event, Sequencer
from edge.events.sinks import JsonlSink, Sink
from edge.inference.pool import ModelPool
from edge.pipeline import Pipeline
from edge.redact import redact_text, redact_url
from edge.sources import open_camera
from edge.sources.sampling import RateDemand

log = logging.getLogger("edge.replay")


@dataclass
class ReplayResult:
    """What a replay did."""

    frames: int
    events: int
    tracks: int
    seconds: float
    frames_inferred: int


@dataclass
class CallbackSink(Sink):
    """Hands every stamped event to a function (``edge demo`` printing, tests collecting) and
    counts events and tracks for the replay summary."""

    callback: Callable[[Event], None] | None = None
    events: int = 0
    tracks: set[int] = field(default_factory=set)
    name = "callback"

    def emit(self, event: Event) -> None:
        self.events += 1
        if event.track is not None:
            self.tracks.add(event.track)
        if self.callback is not None:
            self.callback(event)


def _expected_frames(path: str, fps: float) -> int | None:
    cap = cv2.VideoCapture(path)
    try:
        n, src_fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    if n <= 0 or src_fps <= 0:
        return None
    return int(math.ceil(n / src_fps * min(fps, src_fps)))


def replay(
    video: str,
    app: AppConfig,
    camera: str,
    *,
    events_out: Path | None = None,
    annotate: Path | None = None,
    on_event: Callable[[Event], None] | None = None,
    processors: list[Processor] | None = None,
    realtime: bool = False,
    show_progress: bool = True,
    start_time: float | None = None,
    annotate_filter: str = "privacy",
    pool: ModelPool | None = None,
) -> ReplayResult:
    """Run camera ``camera`` of ``app`` on ``video``.

    Events go through an :class:`EventBus` (with ``processors``, ticked with each frame's time)
    to ``events_out`` (JSON lines, truncated first) and ``on_event``. ``start_time`` (epoch s,
    default now) is the time of the video's first frame: ``ts = start_time + pos``.
    ``annotate_filter`` (edge.privacy.filters) runs on every annotated frame before drawing:
    by default the camera's privacy policy (people masked). ``pool``: where the models load
    (default: a new pool for this replay, :func:`edge.app.models.make_pool` of ``app``).
    """
    if "://" not in video and not Path(video).is_file():
        raise SourceError(f"video file not found: {video}")
    start = time.time() if start_time is None else float(start_time)
    cam_cfg: CameraConfig = app.cameras[camera].model_copy(update={"url": video, "realtime": realtime, "loop": False})
    pool = pool or make_pool(app)
    demand = RateDemand()  # the pipeline asks the reader for burst-rate frames only while needed
    pipeline = Pipeline(camera, cam_cfg, app, video_origin=start, pool=pool, demand=demand)
    reader = open_camera(camera, cam_cfg, start_time=start, demand=demand)
    counter = CallbackSink(on_event)
    sinks: list[Sink] = [counter]
    if events_out is not None:
        events_out.parent.mkdir(parents=True, exist_ok=True)
        events_out.write_text("", encoding="utf-8")
        sinks.insert(0, JsonlSink(events_out))
    bus = build_bus(app.device_id, sinks, Sequencer(), processors=processors or ())
    video_out = None
    if annotate is not None:
        from edge.privacy.filters import build_filter

        ann_filter = build_filter(annotate_filter, cam_cfg, {**app.model_options(), "pool": pool})
        video_out = AnnotatedVideo(video, annotate, cam_cfg, ann_filter)
    # an estimate: the reader samples at detect.fps, at the burst rate only while a track needs it
    total = _expected_frames(video, cam_cfg.detect.fps) if "://" not in video else None
    # a bar only on a terminal: its \r updates would land in a log file as hundreds of lines
    bar = tqdm(
        total=total,
        unit="frame",
        desc="replay",
        file=sys.stderr,
        disable=not show_progress or not sys.stderr.isatty(),
        leave=False,
    )
    n_frames = 0
    last_capture: float | None = None
    t0 = time.perf_counter()
    reader.start()
    try:
        for frame in reader:
            inferred = pipeline.stats.frames_inferred
            for event in pipeline.process(frame):
                bus.emit(event)
            bus.tick(frame.capture_time)
            last_capture = frame.capture_time
            n_frames += 1
            bar.update(1)
            if video_out is not None:
                # boxes from the latest inferred frame, on every source frame until the next one
                fresh = pipeline.stats.frames_inferred > inferred
                overlay = snapshot(pipeline.last_detections, pipeline.tracker.tracks, _occupancy(pipeline))
                pts = frame.pts if frame.pts is not None else frame.capture_time - start
                video_out.until(pts, overlay if fresh else None)
        # the stream ends at its last frame, not at the last track's last sighting
        for event in pipeline.close(last_capture if last_capture is not None else start):
            bus.emit(event)
        if reader.stats.last_error and n_frames == 0:
            raise SourceError(f"cannot read video {redact_url(video)}: {reader.stats.last_error}")
        st = pipeline.stats
        if st.frame_errors and not st.frames_inferred:  # not one frame got through the models
            raise EdgeError(
                f"all {st.frame_errors} frames of {redact_url(video)} that reached the models failed: "
                f"{redact_text(st.last_error)}"
            )
    finally:
        reader.stop()
        bar.close()
        bus.close()
        if video_out is not None:
            video_out.close()
    seconds = time.perf_counter() - t0
    return ReplayResult(n_frames, counter.events, len(counter.tracks), seconds, pipeline.stats.frames_inferred)


def _occupancy(pipeline: Pipeline) -> dict[str, int]:
    return {name: pipeline.occupancy.count(name) for name in pipeline.cfg.zones}
