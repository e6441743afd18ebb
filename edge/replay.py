"""``edge replay``: the whole pipeline on a video file, as fast as possible, with no frame dropped.

video -> sampled frames -> pipeline -> EventBus -> sinks (a JSON-lines file and/or a callback),
the same bus ``edge run`` uses, so replayed events are stamped (``device``, ``seq``) and can be
fed to processors (the rule engine) exactly like live ones. Optionally an annotated video.

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
import numpy as np
from tqdm import tqdm

from edge.annotate import draw_detections
from edge.config import AppConfig, CameraConfig
from edge.errors import SourceError
from edge.events.bus import EventBus, Processor
from edge.events.schema import Event, Sequencer
from edge.events.sinks import FanOut, JsonlSink, Sink
from edge.pipeline import Pipeline
from edge.sources import open_camera

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
) -> ReplayResult:
    """Run camera ``camera`` of ``app`` on ``video``.

    Events go through an :class:`EventBus` (with ``processors``, ticked with each frame's time)
    to ``events_out`` (JSON lines, truncated first) and ``on_event``. ``start_time`` (epoch s,
    default now) is the time of the video's first frame: ``ts = start_time + pos``.
    """
    if "://" not in video and not Path(video).is_file():
        raise SourceError(f"video file not found: {video}")
    start = time.time() if start_time is None else float(start_time)
    cam_cfg: CameraConfig = app.cameras[camera].model_copy(update={"url": video, "realtime": realtime, "loop": False})
    pipeline = Pipeline(camera, cam_cfg, app, video_origin=start)
    reader = open_camera(camera, cam_cfg, start_time=start)
    counter = CallbackSink(on_event)
    sinks: list[Sink] = [counter]
    if events_out is not None:
        events_out.parent.mkdir(parents=True, exist_ok=True)
        events_out.write_text("", encoding="utf-8")
        sinks.insert(0, JsonlSink(events_out))
    bus = EventBus(app.device_id, FanOut(sinks), Sequencer(), processors=processors)
    writer: cv2.VideoWriter | None = None
    total = _expected_frames(video, cam_cfg.detect.fps) if "://" not in video else None
    bar = tqdm(total=total, unit="frame", desc="replay", file=sys.stderr, disable=not show_progress, leave=False)
    n_frames = 0
    t0 = time.perf_counter()
    reader.start()
    try:
        for frame in reader:
            for event in pipeline.process(frame):
                bus.emit(event)
            bus.tick(frame.capture_time)
            n_frames += 1
            bar.update(1)
            if annotate is not None:
                image = draw_detections(frame.image, pipeline.last_detections, pipeline.tracker.active)
                if writer is None:
                    writer = _open_writer(annotate, cam_cfg.detect.fps, image)
                writer.write(image)
        for event in pipeline.close(_last_time(pipeline, start)):
            bus.emit(event)
        if reader.stats.last_error and n_frames == 0:
            raise SourceError(f"cannot read video {video}: {reader.stats.last_error}")
    finally:
        reader.stop()
        bar.close()
        bus.close()
        if writer is not None:
            writer.release()
    seconds = time.perf_counter() - t0
    return ReplayResult(n_frames, counter.events, len(counter.tracks), seconds, pipeline.stats.frames_inferred)


def _last_time(pipeline: Pipeline, fallback: float) -> float:
    tracks = pipeline.tracker.tracks
    return max(t.last_seen for t in tracks) if tracks else fallback


def _open_writer(path: Path, fps: float, image: np.ndarray) -> cv2.VideoWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise SourceError(f"cannot write annotated video {path}")
    return writer
