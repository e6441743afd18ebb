"""``edge replay``: the whole pipeline on a video file, as fast as possible, with no frame dropped.

video -> sampled frames -> pipeline -> events (JSON lines) and, optionally, an annotated video
(the sampled frames with boxes, labels and track ids, written at the sampling rate).
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cv2
import numpy as np
from tqdm import tqdm

from edge.annotate import draw_detections
from edge.config import AppConfig, CameraConfig
from edge.errors import SourceError
from edge.events.schema import Event
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
    events_out: IO[str] | None = None,
    annotate: Path | None = None,
    on_event: Callable[[Event], None] | None = None,
    realtime: bool = False,
    show_progress: bool = True,
    start_time: float | None = None,
) -> ReplayResult:
    """Run camera ``camera`` of ``app`` on ``video``; write events as JSON lines to ``events_out``."""
    if "://" not in video and not Path(video).is_file():
        raise SourceError(f"video file not found: {video}")
    cam_cfg: CameraConfig = app.cameras[camera].model_copy(update={"url": video, "realtime": realtime, "loop": False})
    pipeline = Pipeline(camera, cam_cfg, app)
    reader = open_camera(camera, cam_cfg, start_time=start_time)
    writer: cv2.VideoWriter | None = None
    total = _expected_frames(video, cam_cfg.detect.fps) if "://" not in video else None
    bar = tqdm(total=total, unit="frame", desc="replay", file=sys.stderr, disable=not show_progress, leave=False)
    n_frames = n_events = 0
    track_ids: set[int] = set()
    t0 = time.perf_counter()

    def emit(events: list[Event]) -> None:
        nonlocal n_events
        for e in events:
            n_events += 1
            if e.track is not None:
                track_ids.add(e.track)
            if events_out is not None:
                events_out.write(e.to_json() + "\n")
            if on_event is not None:
                on_event(e)

    reader.start()
    try:
        for frame in reader:
            emit(pipeline.process(frame))
            n_frames += 1
            bar.update(1)
            if annotate is not None:
                image = draw_detections(frame.image, pipeline.last_detections, pipeline.tracker.active)
                if writer is None:
                    writer = _open_writer(annotate, cam_cfg.detect.fps, image)
                writer.write(image)
        emit(pipeline.close(_last_time(pipeline, start_time)))
        if reader.stats.last_error and n_frames == 0:
            raise SourceError(f"cannot read video {video}: {reader.stats.last_error}")
    finally:
        reader.stop()
        bar.close()
        if writer is not None:
            writer.release()
    return ReplayResult(n_frames, n_events, len(track_ids), time.perf_counter() - t0, pipeline.stats.frames_inferred)


def _last_time(pipeline: Pipeline, fallback: float | None) -> float:
    tracks = pipeline.tracker.tracks
    if tracks:
        return max(t.last_seen for t in tracks)
    return fallback if fallback is not None else time.time()


def _open_writer(path: Path, fps: float, image: np.ndarray) -> cv2.VideoWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise SourceError(f"cannot write annotated video {path}")
    return writer


def read_events(path: Path) -> list[dict[str, object]]:
    """Events from a JSON-lines file (for tests and tools)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
