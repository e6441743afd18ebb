"""The interfaces ``edge run`` wires together: what a camera source, a pipeline and the
metrics must offer the camera workers, as :class:`typing.Protocol` s mypy checks.

Real sources (:class:`edge.sources.CameraReader`) and pipelines (:class:`edge.pipeline.Pipeline`)
have every optional part; test doubles and sources that are still starting may have fewer
(no ``stats`` yet, a stats object without every counter). The optional parts are separate
runtime-checkable protocols, and the two readers of partial stats objects below are the only
places that tolerate missing fields - with the defaults the appliance has always reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from edge.config import AppConfig, CameraConfig
from edge.metrics import WorkerLoad
from edge.types import Frame

if TYPE_CHECKING:
    import numpy as np
    from prometheus_client import Counter

    from edge.events.schema import Event


class FrameSource(Protocol):
    """A camera: ``start()`` connects, iterating yields frames until the source ends or ``stop()``."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def __iter__(self) -> Iterator[Frame]: ...


class DropCounter(Protocol):
    """The part of a reader's stats a consumer that skips frames updates."""

    frames_dropped: int


@runtime_checkable
class LatestFrameSource(Protocol):
    """A source that keeps only its newest frame (``latest``): a worker that waited for its turn
    may skip to that frame with a non-blocking ``read(0)``, counting the skipped one as dropped."""

    latest: bool
    stats: DropCounter

    def read(self, timeout: float | None = None) -> Frame | None: ...


class FramePipeline(Protocol):
    """One camera's frames -> events; ``close`` ends its open tracks."""

    def process(self, frame: Frame) -> list[Event]: ...

    def close(self, now: float) -> list[Event]: ...


@runtime_checkable
class SelectivePipeline(Protocol):
    """A pipeline that says which frames it needs (the rest skip the fair turn entirely)."""

    def wants(self, frame: Frame) -> bool: ...


class CameraMetrics(Protocol):
    """The metrics a camera worker reports to (:class:`edge.metrics.Metrics`)."""

    camera_restarts: Counter
    pipeline_errors: Counter

    def add_camera(self, name: str, reader: object = None, pipeline: object = None) -> None: ...

    def add_worker(self, name: str, worker: WorkerLoad) -> None: ...

    def observe_frame_age(self, camera: str, seconds: float) -> None: ...

    def observe_capture_to_outbox(self, camera: str, seconds: float) -> None: ...


class SnapshotMask(Protocol):
    """Masks a snapshot before it leaves (edge.privacy PrivacyFilter); None withholds it."""

    def protect(
        self, image: np.ndarray, box: tuple[int, int, int, int], plate_boxes: object = ()
    ) -> np.ndarray | None: ...


class SnapshotKeeper(Protocol):
    """Keeps published snapshots for feedback export (edge.feedback SnapshotStore)."""

    def put(self, event_id: str, jpeg: bytes) -> None: ...


CameraFactory = Callable[[str, CameraConfig], FrameSource]
PipelineFactory = Callable[[str, CameraConfig, AppConfig], FramePipeline]


@dataclass(frozen=True)
class CameraStatus:
    """A camera source's counters as the stats topic, ``/healthz`` and the watchdog read them."""

    up: bool = False
    fps: float = 0.0
    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    last_frame_time: float = 0.0


@dataclass(frozen=True)
class PipelineHealth:
    """How many frames failed in a pipeline and whether any went through the models."""

    frame_errors: int = 0
    frames_inferred: int = 0
    last_error: str = ""


def _field(stats: object, name: str, default: float) -> float:
    """A numeric field of a stats object that may lack it (or hold None)."""
    return float(getattr(stats, name, default) or default)


def camera_status(source: object) -> CameraStatus:
    """The status of ``source`` (None: not created yet), missing counters read as 0."""
    st = getattr(source, "stats", None)
    if st is None:
        return CameraStatus()
    return CameraStatus(
        up=bool(getattr(st, "connected", False)),
        fps=_field(st, "capture_fps", 0.0),
        frames=int(_field(st, "frames_read", 0)),
        dropped=int(_field(st, "frames_dropped", 0)),
        reconnects=int(_field(st, "reconnects", 0)),
        last_frame_time=_field(st, "last_frame_time", 0.0),
    )


def pipeline_health(pipeline: object) -> PipelineHealth:
    """The failure counters of ``pipeline`` (one without stats never looks broken)."""
    st = getattr(pipeline, "stats", None)
    return PipelineHealth(
        frame_errors=int(_field(st, "frame_errors", 0)),
        frames_inferred=int(_field(st, "frames_inferred", 0)),
        last_error=str(getattr(st, "last_error", "")),
    )
