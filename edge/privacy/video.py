"""``edge replay VIDEO --filter NAME --out OUT.mp4``: every frame of a video through a frame
filter, reassembled as H.264 MP4 at the source frame rate (the writer of ``--annotate``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
from tqdm import tqdm

from edge.annotate import open_sink
from edge.errors import SourceError
from edge.privacy.filters import FrameFilter


@dataclass
class FilterResult:
    """What a filter pass did."""

    frames: int
    fps: float  # the source's, kept in the output
    seconds: float

    @property
    def speed(self) -> float:
        """Frames filtered per second of wall time."""
        return self.frames / self.seconds if self.seconds else 0.0


def filter_video(
    source: str,
    out: Path,
    frame_filter: FrameFilter,
    *,
    show_progress: bool = True,
    on_frame: Callable[[int], None] | None = None,
) -> FilterResult:
    """Decode ``source``, pass every frame through ``frame_filter`` (with no detections) and
    write the results to ``out`` at the source frame rate. Progress: a bar on a terminal,
    ``on_frame(n)`` for callers. Raises SourceError for an unreadable source."""
    if "://" not in source and not Path(source).is_file():
        raise SourceError(f"video file not found: {source}")
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise SourceError(f"cannot read video {source}")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if 1.0 <= fps <= 240.0 else 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    bar = tqdm(
        total=total, unit="frame", desc="filter", file=sys.stderr, disable=not show_progress or not sys.stderr.isatty()
    )
    sink = None
    n = 0
    t0 = time.perf_counter()
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                break
            frame = frame_filter(image, None)
            if sink is None:
                sink = open_sink(out, fps, frame.shape[1], frame.shape[0])
            sink.write(frame)
            n += 1
            bar.update(1)
            if on_frame is not None:
                on_frame(n)
    finally:
        cap.release()
        bar.close()
        if sink is not None:
            sink.close()
    if n == 0:
        raise SourceError(f"no frame could be decoded from {source}")
    return FilterResult(n, fps, time.perf_counter() - t0)
