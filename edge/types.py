"""The two currencies every stage shares: a captured ``Frame`` and a frame-level ``Detections``.

Boxes are always normalised ``xyxy`` in [0, 1] relative to the frame, so tracking, zones and
events never depend on the detect resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One decoded image from a camera.

    ``capture_time`` is UTC epoch seconds: wall clock when read for live sources, or the
    source's start time plus the media timestamp for files (so replays are reproducible).
    ``index`` counts frames read from the source (before sampling), ``pts`` is the media
    timestamp in seconds where known. ``image`` is at the camera's detect size, or native
    (bounded by ``max_frame_pixels``) for a camera that crops plates from full-resolution
    frames (``edge.sources.reader.native_frames``); the pipeline resizes it for detection.
    """

    camera: str
    index: int
    capture_time: float
    image: np.ndarray  # HxWx3 uint8, BGR
    pts: float | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        h, w = self.image.shape[:2]
        return w, h


def _empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


@dataclass
class Detections:
    """Parallel arrays describing N objects in one frame (supervision-style).

    ``xyxy`` (N,4) float32 normalised; ``confidence`` (N,) float32; ``class_id`` (N,) int32;
    ``labels`` N strings; ``tracker_id`` (N,) int64 (-1 = untracked); ``data`` holds extra
    per-object values (lists or arrays of length N), e.g. attributes.
    """

    xyxy: np.ndarray = field(default_factory=lambda: _empty((0, 4), np.float32))
    confidence: np.ndarray = field(default_factory=lambda: _empty((0,), np.float32))
    class_id: np.ndarray = field(default_factory=lambda: _empty((0,), np.int32))
    labels: list[str] = field(default_factory=list)
    tracker_id: np.ndarray | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        self.class_id = np.asarray(self.class_id, dtype=np.int32).reshape(-1)
        n = len(self.xyxy)
        if not (len(self.confidence) == len(self.class_id) == len(self.labels) == n):
            raise ValueError("Detections arrays must have the same length")
        if self.tracker_id is None:
            self.tracker_id = np.full((n,), -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        """Select objects by boolean mask, index array or slice."""
        idx = np.arange(len(self))[index]
        idx = np.atleast_1d(idx)
        assert self.tracker_id is not None
        return Detections(
            xyxy=self.xyxy[idx],
            confidence=self.confidence[idx],
            class_id=self.class_id[idx],
            labels=[self.labels[i] for i in idx],
            tracker_id=self.tracker_id[idx],
            data={k: _take(v, idx) for k, v in self.data.items()},
        )

    @property
    def area(self) -> np.ndarray:
        """Box areas as a fraction of the frame."""
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]

    @property
    def bottom_center(self) -> np.ndarray:
        """(N,2) normalised bottom-centre points: where an object touches the ground."""
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, self.xyxy[:, 3]], axis=1)


def _take(value: Any, idx: np.ndarray) -> Any:
    if isinstance(value, np.ndarray):
        return value[idx]
    return [value[i] for i in idx]
