"""One camera's thread in ``edge run``: read, process, emit; restarted with backoff after a failure.

A crash restarts that camera and never touches the others; a frame whose processing raises is
logged and skipped; a camera whose every frame fails in its models stops the appliance
(:class:`PipelineBroken`), because restarting cannot help.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import replace

from edge.app.seams import (
    CameraFactory,
    CameraMetrics,
    FramePipeline,
    FrameSource,
    LatestFrameSource,
    PipelineFactory,
    SelectivePipeline,
    SnapshotKeeper,
    SnapshotMask,
    pipeline_health,
)
from edge.config import AppConfig, CameraConfig
from edge.events.bus import Emitter
from edge.events.mqtt import MqttPublisher
from edge.events.schema import Event, epoch
from edge.inference.scheduler import FairScheduler
from edge.privacy.snapshots import SnapshotWorker
from edge.redact import redact_text
from edge.types import Frame

log = logging.getLogger("edge.app")

_MAX_BACKOFF = 30.0
_ERROR_LOG_EVERY = 60.0
_SNAPSHOT_SIDE = 160  # px: enough to recognise a car, ~5 kB as JPEG
BROKEN_AFTER = 50  # frames failing in a row, with none ever through the models: the pipeline is broken


class PipelineBroken(Exception):
    """Every frame a camera sent to its models failed: a broken model or head, not a bad frame."""


def _is_live(url: str) -> bool:
    """Network cameras and devices are restarted when their stream ends; files are finished."""
    return "://" in url and not url.startswith("file://") or url.startswith("/dev/video")


def make_snapshot(
    frame: Frame, box: list[float], side: int = _SNAPSHOT_SIDE, privacy: SnapshotMask | None = None, plate: bool = False
) -> bytes | None:
    """A small JPEG of ``box`` (normalised xyxy) in ``frame``, longest side <= ``side`` px.

    ``privacy`` (an edge.privacy PrivacyFilter) masks people, heads and plates first; None when
    it withholds the picture (a model failed: fail closed). ``plate``: ``box`` is a plate."""
    import cv2  # lazy: only needed with mqtt.snapshots

    h, w = frame.image.shape[:2]
    x0, y0 = max(0, int(box[0] * w)), max(0, int(box[1] * h))
    x1, y1 = min(w, int(box[2] * w) + 1), min(h, int(box[3] * h) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    image = frame.image
    if privacy is not None:
        masked = privacy.protect(image, (x0, y0, x1, y1), plate_boxes=[(x0, y0, x1, y1)] if plate else ())
        if masked is None:
            return None
        image = masked
    crop = image[y0:y1, x0:x1]
    scale = side / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))))
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return buf.tobytes() if ok else None


def _check_pipeline(camera: str, pipeline: FramePipeline, at_least: int) -> None:
    """Raise PipelineBroken when ``at_least`` frames failed and not one went through the models."""
    health = pipeline_health(pipeline)
    errors = health.frame_errors
    if errors >= at_least and not health.frames_inferred:
        last = redact_text(health.last_error)
        raise PipelineBroken(f"camera {camera}: all {errors} frames that reached the models failed: {last}")


def _newest(reader: LatestFrameSource, frame: Frame) -> Frame:
    """The newest frame the (latest-frame) reader has, counting the older ones as dropped."""
    while True:
        try:
            newer = reader.read(0)
        except Exception:  # noqa: BLE001 - a reader without a non-blocking read: keep ours
            return frame
        if newer is None:
            return frame
        reader.stats.frames_dropped += 1
        frame = newer


class CameraWorker:
    """One camera's thread: read, process, emit; restarts itself after a failure.

    Every collaborator comes in here: ``publisher`` (snapshots go out through it when
    ``mqtt.snapshots``), ``privacy`` masks them first, ``snapshot_store`` keeps them for
    feedback, ``models_ready`` (set once start-up loaded the shared models) gates the pipeline.
    """

    def __init__(
        self,
        name: str,
        cam_cfg: CameraConfig,
        app_cfg: AppConfig,
        bus: Emitter,
        metrics: CameraMetrics,
        stop: threading.Event,
        camera_factory: CameraFactory,
        pipeline_factory: PipelineFactory,
        publisher: MqttPublisher | None = None,
        scheduler: FairScheduler | None = None,
        *,
        models_ready: threading.Event | None = None,
        snapshot_store: SnapshotKeeper | None = None,
        privacy: SnapshotMask | None = None,
    ) -> None:
        self.name, self.cam_cfg, self.app_cfg = name, cam_cfg, app_cfg
        self.bus, self.metrics, self.stop = bus, metrics, stop
        self.camera_factory, self.pipeline_factory = camera_factory, pipeline_factory
        self.scheduler = scheduler
        self.models_ready = models_ready
        if scheduler is not None:
            scheduler.add(name, float(cam_cfg.priority))
        # progress, read by the watchdog: monotonic start of the frame being processed (None
        # between frames) and the wall clock then; set once the first start attempt is over
        self.busy_since: float | None = None
        self.busy_wall = 0.0
        self.started = threading.Event()
        self.cpu_seconds = 0.0  # time.thread_time of this camera's thread in its frame loop
        self.wait_seconds = 0.0  # waiting for a fair turn
        metrics.add_worker(name, self)
        self.snapshots = publisher if (app_cfg.mqtt is not None and app_cfg.mqtt.snapshots) else None
        self.snapshot_store = snapshot_store
        self.privacy = privacy
        self.snapshot_worker: SnapshotWorker | None = None  # makes masked snapshots off this thread
        self.reader: FrameSource | None = None
        self.errors = 0
        self.restarts = 0
        self.done = threading.Event()
        self.crashed: BaseException | None = None  # set when the supervisor itself died of a bug
        self._last_error_log = -1e9
        self.last_frame = time.monotonic()  # newest frame (start-up counts): feeds the systemd watchdog
        self.loaded = threading.Event()  # pipeline (models) built once: systemd READY waits for every camera
        self.thread = threading.Thread(target=self._supervise, name=f"edge-camera-{name}", daemon=True)

    def start(self) -> None:
        """Start the camera thread."""
        self.thread.start()

    def stop_reader(self) -> None:
        """Unblock the frame loop (called from the main thread on shutdown)."""
        reader = self.reader
        if reader is not None:
            try:
                reader.stop()
            except Exception:
                log.exception("camera %s: stopping the reader failed", self.name)

    def _supervise(self) -> None:
        backoff = self.cam_cfg.reconnect.initial_delay
        try:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    self._run_once()
                    if self.stop.is_set() or not _is_live(self.cam_cfg.url):
                        log.info("camera %s: source finished", self.name)
                        return
                    log.warning("camera %s: stream ended; restarting", self.name)
                except PipelineBroken as err:  # restarting cannot help: the same models fail again
                    self.crashed = err
                    log.critical("%s; exiting so the problem is seen", err)
                    return
                except Exception:
                    log.exception("camera %s failed; restarting in %.1f s", self.name, backoff)
                finally:
                    self.started.set()
                self.restarts += 1
                self.metrics.camera_restarts.labels(self.name).inc()
                if time.monotonic() - started > 60:  # it ran fine for a while: start backoff over
                    backoff = self.cam_cfg.reconnect.initial_delay
                if self.stop.wait(backoff):
                    return
                backoff = min(backoff * 2, self.cam_cfg.reconnect.max_delay, _MAX_BACKOFF)
        except BaseException as err:  # a bug in supervision: the camera is dead, the process must say so
            self.crashed = err
            log.critical("camera %s: supervisor crashed; exiting so the service restarts", self.name, exc_info=err)
        finally:
            self.done.set()

    def _run_once(self) -> None:
        reader = self.camera_factory(self.name, self.cam_cfg)
        self.reader = reader
        pipeline: FramePipeline | None = None
        try:
            if self.stop.is_set():  # shutdown raced with start-up: stop_reader() saw no reader
                return
            # the camera connects while the models load (start-up); it keeps the newest frame
            reader.start()
            while self.models_ready is not None and not self.models_ready.wait(0.2):
                if self.stop.is_set():
                    return
            pipeline = self.pipeline_factory(self.name, self.cam_cfg, self.app_cfg)
            self.last_frame = time.monotonic()
            self.loaded.set()
            self.metrics.add_camera(self.name, reader, pipeline)
            self.started.set()
            self._frame_loop(reader, pipeline)
            _check_pipeline(self.name, pipeline, 1)  # a short file whose every frame failed
        finally:
            self._close(reader, pipeline)

    def _frame_loop(self, reader: FrameSource, pipeline: FramePipeline) -> None:
        latest = reader if isinstance(reader, LatestFrameSource) and reader.latest else None
        wants = pipeline.wants if isinstance(pipeline, SelectivePipeline) else None
        for frame in reader:
            if self.stop.is_set():
                break
            self.last_frame = time.monotonic()
            if wants is not None and not wants(frame):
                continue  # between detector frames (docs/counting.md): no turn, no drop counted
            c0, w0 = time.thread_time(), time.monotonic()
            with self._turn():
                self.wait_seconds += time.monotonic() - w0
                if latest is not None:  # the wait for a turn must not make the frame older
                    frame = _newest(latest, frame)
                events = self._process(pipeline, frame)
            for event in events:
                self._emit(event, frame)
            self.cpu_seconds += time.thread_time() - c0
            _check_pipeline(self.name, pipeline, BROKEN_AFTER)

    def _process(self, pipeline: FramePipeline, frame: Frame) -> list[Event]:
        """One frame through the pipeline, timed for the watchdog; a failure skips the frame."""
        self.busy_since, self.busy_wall = time.monotonic(), time.time()
        self.metrics.observe_frame_age(self.name, self.busy_wall - frame.capture_time)
        try:
            return pipeline.process(frame) or []
        except Exception as err:
            self._frame_error(err)
            return []
        finally:
            self.busy_since = None

    def _close(self, reader: FrameSource, pipeline: FramePipeline | None) -> None:
        try:
            reader.stop()
        except Exception:
            log.exception("camera %s: stopping the reader failed", self.name)
        try:
            for event in (pipeline.close(time.time()) if pipeline is not None else None) or ():
                self._emit(event, None)
        except Exception:
            log.exception("camera %s: closing the pipeline failed", self.name)

    def _turn(self) -> AbstractContextManager[object]:
        """This camera's fair share of processing (see edge.inference.scheduler)."""
        return self.scheduler.turn(self.name) if self.scheduler is not None else contextlib.nullcontext()

    def _frame_error(self, err: Exception) -> None:
        self.errors += 1
        self.metrics.pipeline_errors.labels(self.name).inc()
        now = time.monotonic()
        if now - self._last_error_log >= _ERROR_LOG_EVERY:  # first one with a traceback, then rate-limited
            self._last_error_log = now
            log.error(
                "camera %s: frame processing failed (%d so far), frame skipped",
                self.name,
                self.errors,
                exc_info=err,
            )

    def _emit(self, event: Event, frame: Frame | None) -> None:
        try:
            stamped = self.bus.emit(event)
        except Exception:
            log.exception("camera %s: emitting an event failed", self.name)
            return
        if frame is None:
            return
        # capture -> outbox (the sinks ran synchronously in emit)
        self.metrics.observe_capture_to_outbox(self.name, time.time() - epoch(stamped.ts))
        if self.snapshots is not None and stamped.box is not None:
            if stamped.type == "plate" or stamped.phase == "start":
                self._take_snapshot(stamped, frame)

    def _take_snapshot(self, stamped: Event, frame: Frame) -> None:
        box, plate = list(stamped.box or ()), stamped.type == "plate"
        if self.privacy is None:
            self._snapshot(stamped.id, frame, box, plate)
            return
        # masking costs ~0.1-0.3 s: on the camera's snapshot thread, not this one
        if self.snapshot_worker is None:
            self.snapshot_worker = SnapshotWorker(self.name, self._snapshot)
        self.snapshot_worker.submit(stamped.id, replace(frame, image=frame.image.copy()), box, plate)

    def _snapshot(self, event_id: str, frame: Frame, box: list[float], plate: bool) -> None:
        """Make, publish and keep the snapshot of one event (privacy-masked when configured)."""
        try:
            jpeg = make_snapshot(frame, box, privacy=self.privacy, plate=plate)
            if jpeg and self.snapshots is not None:
                self.snapshots.publish_direct(self.snapshots.topics.snapshot(self.name, event_id), jpeg)
                if self.snapshot_store is not None:
                    self.snapshot_store.put(event_id, jpeg)
        except Exception:
            log.debug("snapshot failed", exc_info=True)
