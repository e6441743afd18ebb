"""``edge run``: cameras -> pipeline -> events -> sinks, until SIGTERM/SIGINT.

One thread per camera; each is supervised (a crash restarts that camera with backoff and never
touches the others) and a frame whose processing raises is logged and skipped. Shutdown order
matters for delivery: readers stop, pipelines close their open tracks (``end`` events), every
event is in the outbox, the publisher drains for ``mqtt.drain_timeout`` seconds, the status goes
``offline`` and the rest of the backlog waits on disk for the next start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from edge.clock import SystemClock
from edge.config import AppConfig, CameraConfig
from edge.counts import DetailSink
from edge.events.bus import EventBus
from edge.events.homeassistant import discovery_messages
from edge.events.mqtt import MqttPublisher
from edge.events.outbox import Outbox
from edge.events.schema import Event, utc_iso
from edge.events.sequence import PersistentSequencer
from edge.events.sinks import FanOut, JsonlSink, MqttSink, Sink, StdoutSink
from edge.events.topics import Topics
from edge.inference.backends import installed as installed_backend
from edge.inference.scheduler import FairScheduler
from edge.metrics import HealthCheck, Metrics, MetricsServer
from edge.privacy import PrivacyCollector, PrivacyStatus, snapshot_privacy
from edge.privacy.snapshots import SnapshotWorker
from edge.redact import redact_text, redact_url
from edge.rules import RuleEngine, build_processors
from edge.rules.metrics import RulesCollector
from edge.systemd import Notifier, Watchdog, watchdog_interval
from edge.types import Frame

log = logging.getLogger("edge.app")

CameraFactory = Callable[[str, CameraConfig], Any]
PipelineFactory = Callable[[str, CameraConfig, AppConfig], Any]

_MAX_BACKOFF = 30.0
EXIT_CAMERA_CRASHED = 3  # run()'s exit code when a camera worker died of a bug or its models fail every frame
_ERROR_LOG_EVERY = 60.0
_SNAPSHOT_SIDE = 160  # px: enough to recognise a car, ~5 kB as JPEG


def build_delivery(config: AppConfig, metrics: Metrics | None = None) -> tuple[EventBus, MqttPublisher | None]:
    """The event bus with every configured sink; the MQTT publisher (not started) if configured.

    Sequence numbers are persisted in the outbox file (one state file per device).
    """
    sinks: list[Sink] = []
    publisher = None
    if config.mqtt is not None:
        ob = config.outbox
        outbox = Outbox(ob.path, ob.max_bytes, ob.when_full, ob.synchronous, memory_max_bytes=ob.memory_max_bytes)
        publisher = MqttPublisher(
            config.mqtt,
            config.device_id,
            outbox,
            on_latency=metrics.observe_publish if metrics else None,
            retained=discovery_messages(
                Topics(config.mqtt.topic_prefix, config.device_id),
                [n for n, c in config.cameras.items() if c.enabled],
                [(n, ln) for n, c in config.cameras.items() if c.enabled and config.counts.enabled for ln in c.lines],
            )
            if config.mqtt.home_assistant
            else (),
        )
        sinks.append(MqttSink(publisher))
        if metrics is not None:
            metrics.outbox, metrics.publisher = outbox, publisher
    if config.outputs.jsonl is not None:
        sinks.append(JsonlSink(config.outputs.jsonl))
    if config.outputs.stdout:
        sinks.append(StdoutSink())
    if not sinks:
        log.warning("no event output configured (mqtt, outputs.jsonl, outputs.stdout): events are discarded")
    levels = {n: c.events.detail for n, c in config.cameras.items() if c.events.detail != "tracks"}
    bus = EventBus(
        config.device_id,
        DetailSink(FanOut(sinks), levels) if levels else FanOut(sinks),
        PersistentSequencer(config.outbox.path),
        on_event=metrics.count_event if metrics else None,
        processors=build_processors(config, SystemClock(), None),
    )
    if metrics is not None:
        for proc in bus.processors:
            if isinstance(proc, RuleEngine):
                metrics.registry.register(RulesCollector(proc))
    return bus, publisher


def rule_engine(bus: EventBus) -> RuleEngine | None:
    """The bus's rule engine, if rules are on."""
    return next((p for p in bus.processors if isinstance(p, RuleEngine)), None)


def reload_rules(config_path: str | None, bus: EventBus) -> None:
    """SIGHUP: validate the config file again and swap in its rules; open visits and anomalies
    are kept. A config that does not validate is logged and the running rules stay."""
    engine = rule_engine(bus)
    if config_path is None or engine is None:
        log.warning("SIGHUP: no config file or no rule engine to reload")
        return
    from edge.config import load_config

    try:
        engine.reload(load_config(config_path).rules)
    except Exception as err:
        log.error("SIGHUP: rules not reloaded, the running rules stay: %s", err)
        return
    log.info("SIGHUP: rules reloaded from %s (%d rules)", config_path, len(engine.cfg.rules))


def _is_live(url: str) -> bool:
    """Network cameras and devices are restarted when their stream ends; files are finished."""
    return "://" in url and not url.startswith("file://") or url.startswith("/dev/video")


def make_snapshot(
    frame: Frame, box: list[float], side: int = _SNAPSHOT_SIDE, privacy: Any = None, plate: bool = False
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
        image = privacy.protect(image, (x0, y0, x1, y1), plate_boxes=[(x0, y0, x1, y1)] if plate else ())
        if image is None:
            return None
    crop = image[y0:y1, x0:x1]
    scale = side / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))))
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return buf.tobytes() if ok else None


BROKEN_AFTER = 50  # frames failing in a row, with none ever through the models: the pipeline is broken


class PipelineBroken(Exception):
    """Every frame a camera sent to its models failed: a broken model or head, not a bad frame."""


def _check_pipeline(camera: str, pipeline: Any, at_least: int) -> None:
    """Raise PipelineBroken when ``at_least`` frames failed and not one went through the models."""
    st = getattr(pipeline, "stats", None)
    errors = int(getattr(st, "frame_errors", 0) or 0)
    if errors >= at_least and not getattr(st, "frames_inferred", 0):
        last = redact_text(str(getattr(st, "last_error", "")))
        raise PipelineBroken(f"camera {camera}: all {errors} frames that reached the models failed: {last}")


class CameraWorker:
    """One camera's thread: read, process, emit; restarts itself after a failure."""

    def __init__(
        self,
        name: str,
        cam_cfg: CameraConfig,
        app_cfg: AppConfig,
        bus: EventBus,
        metrics: Metrics,
        stop: threading.Event,
        camera_factory: CameraFactory,
        pipeline_factory: PipelineFactory,
        publisher: MqttPublisher | None = None,
        scheduler: FairScheduler | None = None,
    ) -> None:
        self.name, self.cam_cfg, self.app_cfg = name, cam_cfg, app_cfg
        self.bus, self.metrics, self.stop = bus, metrics, stop
        self.camera_factory, self.pipeline_factory = camera_factory, pipeline_factory
        self.scheduler = scheduler
        self.models_ready: threading.Event | None = None  # set once start-up loaded the models
        if scheduler is not None:
            scheduler.add(name, float(getattr(cam_cfg, "priority", 1.0)))
        # progress, read by the watchdog: monotonic start of the frame being processed (None
        # between frames) and the wall clock then; set once the first start attempt is over
        self.busy_since: float | None = None
        self.busy_wall = 0.0
        self.started = threading.Event()
        self.cpu_seconds = 0.0  # time.thread_time of this camera's thread in its frame loop
        self.wait_seconds = 0.0  # waiting for a fair turn
        add_worker = getattr(metrics, "add_worker", None)
        if add_worker is not None:
            add_worker(name, self)
        self.snapshots = publisher if (app_cfg.mqtt is not None and app_cfg.mqtt.snapshots) else None
        self.snapshot_store: Any = None  # edge.feedback.SnapshotStore: crops kept for feedback export
        self.privacy: Any = None  # edge.privacy.PrivacyFilter: masks snapshots before they leave
        self.snapshot_worker: SnapshotWorker | None = None  # makes masked snapshots off this thread
        self.reader: Any = None
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
        pipeline: Any = None
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
            latest = bool(getattr(reader, "latest", False))
            for frame in reader:
                if self.stop.is_set():
                    break
                self.last_frame = time.monotonic()
                wants = getattr(pipeline, "wants", None)
                if wants is not None and not wants(frame):
                    continue  # between detector frames (docs/counting.md): no turn, no drop counted
                c0, w0 = time.thread_time(), time.monotonic()
                with self._turn():
                    self.wait_seconds += time.monotonic() - w0
                    if latest:  # the wait for a turn must not make the frame older
                        frame = _newest(reader, frame)
                    self.busy_since, self.busy_wall = time.monotonic(), time.time()
                    _observe(self.metrics, "observe_frame_age", self.name, self.busy_wall - frame.capture_time)
                    try:
                        events = pipeline.process(frame)
                    except Exception as err:
                        self._frame_error(err)
                        events = None
                    finally:
                        self.busy_since = None
                for event in events or ():
                    self._emit(event, frame)
                self.cpu_seconds += time.thread_time() - c0
                _check_pipeline(self.name, pipeline, BROKEN_AFTER)
            _check_pipeline(self.name, pipeline, 1)  # a short file whose every frame failed
        finally:
            try:
                reader.stop()
            except Exception:
                log.exception("camera %s: stopping the reader failed", self.name)
            try:
                for event in (pipeline.close(time.time()) if pipeline is not None else None) or ():
                    self._emit(event, None)
            except Exception:
                log.exception("camera %s: closing the pipeline failed", self.name)

    def _turn(self) -> Any:
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
        if frame is not None:  # capture -> outbox (the sinks ran synchronously in emit)
            _observe(self.metrics, "observe_capture_to_outbox", self.name, time.time() - _epoch(stamped.ts))
        if self.snapshots is not None and frame is not None and stamped.box is not None:
            if stamped.type == "plate" or stamped.phase == "start":
                job = (stamped.id, frame, list(stamped.box), stamped.type == "plate")
                if self.privacy is None:
                    self._snapshot(*job)
                else:  # masking costs ~0.1-0.3 s: on the camera's snapshot thread, not this one
                    if self.snapshot_worker is None:
                        self.snapshot_worker = SnapshotWorker(self.name, self._snapshot)
                    self.snapshot_worker.submit(stamped.id, replace(frame, image=frame.image.copy()), *job[2:])

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


def _one_opencv_thread_per_camera(config: AppConfig, slots: int) -> None:
    """With at least as many cameras as processing slots, the camera threads already keep the
    cores busy: OpenCV's own thread pool then only adds hand-over cost (the motion gate's
    shrink: 1.19 CPU-ms with 2 threads against 0.90 with 1), so each call runs on its caller."""
    if sum(1 for c in config.cameras.values() if c.enabled) >= slots:
        import cv2

        cv2.setNumThreads(1)


def _newest(reader: Any, frame: Frame) -> Frame:
    """The newest frame the (latest-frame) reader has, counting the older ones as dropped."""
    while True:
        try:
            newer = reader.read(0)
        except Exception:  # noqa: BLE001 - a reader without a non-blocking read: keep ours
            return frame
        if newer is None:
            return frame
        stats = getattr(reader, "stats", None)
        if stats is not None and hasattr(stats, "frames_dropped"):
            stats.frames_dropped += 1
        frame = newer


def _observe(metrics: Any, hook: str, camera: str, value: float) -> None:
    """Call an optional metrics hook (``Metrics`` has it; test doubles may not)."""
    fn = getattr(metrics, hook, None)
    if fn is not None:
        fn(camera, value)


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def stats_payload(workers: list[CameraWorker], bus: EventBus, metrics: Metrics, started: float) -> dict[str, Any]:
    """The JSON published on ``<prefix>/<device>/stats``."""
    cams: dict[str, Any] = {}
    for w in workers:
        rs = getattr(w.reader, "stats", None)
        cams[w.name] = {
            "up": bool(getattr(rs, "connected", False)),
            "fps": round(float(getattr(rs, "capture_fps", 0.0) or 0.0), 2),
            "frames": int(getattr(rs, "frames_read", 0) or 0),
            "dropped": int(getattr(rs, "frames_dropped", 0) or 0),
            "reconnects": int(getattr(rs, "reconnects", 0) or 0),
            "errors": w.errors,
        }
    events: dict[str, int] = {}
    for (_cam, typ), n in dict(bus.counts).items():
        events[typ] = events.get(typ, 0) + n
    out: dict[str, Any] = {
        "ts": utc_iso(time.time()),
        "uptime": round(time.monotonic() - started, 1),
        "cameras": cams,
        "events": events,
    }
    engine = rule_engine(bus)
    if engine is not None:
        counts = engine.open_counts()
        out["open"] = {"visits": counts["visits"], "anomalies": sum(counts["anomalies"].values())}
    if metrics.outbox is not None:
        st = metrics.outbox.stats()
        out["outbox"] = {"depth": st.depth, "oldest_age": round(st.oldest_age(), 1), "dropped": st.dropped}
    return out


def _use_onnx_providers(config: AppConfig) -> None:
    """``runtime.providers`` -> the ONNX Runtime backend (not imported unless configured)."""
    rt = config.runtime
    if (rt.providers != ["CPUExecutionProvider"] or rt.provider_options) and installed_backend("onnx"):
        from edge.inference.backends.onnx import set_providers

        set_providers(rt.providers, rt.provider_options)


def _default_factories() -> tuple[CameraFactory, PipelineFactory]:
    from edge.pipeline import Pipeline  # lazy: owned by other modules, imported only for a real run
    from edge.sources import open_camera

    return open_camera, Pipeline


def run(
    config: AppConfig,
    stop_event: threading.Event | None = None,
    *,
    camera_factory: CameraFactory | None = None,
    pipeline_factory: PipelineFactory | None = None,
    config_path: str | None = None,
    updates: Any = None,
    watchdog: bool | None = None,
) -> int:
    """Run the appliance until ``stop_event`` is set, SIGTERM/SIGINT arrives, or every (file)
    source has finished. Returns the exit code: 0 = clean shutdown, :data:`EXIT_CAMERA_CRASHED`
    when a camera worker died of a bug (every camera is stopped then, so a service manager restarts
    the whole appliance rather than leaving one camera dead).

    ``camera_factory``/``pipeline_factory`` default to ``edge.sources.open_camera`` and
    ``edge.pipeline.Pipeline`` (tests inject fakes). Raises :class:`edge.errors.EdgeError` for
    configuration problems found at start (e.g. missing TLS files). SIGHUP reloads the rules
    from ``config_path``.

    With ``update.enabled`` (and a ``config_path``) signed remote updates restart this function
    with the new config file (:func:`edge.update.run_with_updates`; ``updates`` is its session).

    With the real pipeline every model is loaded once, one at a time, before any camera
    builds its pipeline (cameras share them, see edge.inference.shared); cameras take fair
    turns at processing (edge.inference.scheduler). ``watchdog`` (default: on for a real run,
    i.e. without test factories and without a caller's ``stop_event``, when
    ``config.watchdog.enabled``) ends the process with exit 70 on a hung start-up, a stuck
    camera thread or a hung shutdown (edge.watchdog).
    """
    # --- update (edge.update): run() restarted around signed remote config updates -------------
    if updates is None and config.update.enabled and config_path is not None:
        from edge.update import run_with_updates

        return run_with_updates(
            run, config, config_path, stop_event, camera_factory=camera_factory, pipeline_factory=pipeline_factory
        )
    # --- end update -----------------------------------------------------------------------------
    real_pipeline = pipeline_factory is None
    if watchdog is None:
        own_stop = stop_event is None or updates is not None  # run_with_updates passes its own
        watchdog = own_stop and camera_factory is None and real_pipeline and config.watchdog.enabled
    dog = _start_watchdog(config) if watchdog else None
    stop = stop_event or threading.Event()
    if camera_factory is None or pipeline_factory is None:
        default_cam, default_pipe = _default_factories()
        camera_factory = camera_factory or default_cam
        pipeline_factory = pipeline_factory or default_pipe
    started = time.monotonic()
    metrics = Metrics(config.device_id)
    bus, publisher = build_delivery(config, metrics)
    workers: list[CameraWorker] = []
    server: MetricsServer | None = None
    old_handlers: dict[int, Any] = {}
    shutting_down = threading.Event()
    # --- update: versions in the retained status and in metrics ---------------------------------
    if updates is not None:
        from edge.update.metrics import UpdateCollector

        metrics.registry.register(UpdateCollector(updates.manager))
        if publisher is not None and not (config.mqtt is not None and config.mqtt.home_assistant):
            upub, usess = publisher, updates  # (Home Assistant needs the plain online/offline status)
            upub.set_status(*usess.status_payloads())
            updates.manager.on_change = lambda: upub.set_status(*usess.status_payloads())
    # --- end update -----------------------------------------------------------------------------
    # --- commands (edge.commands): operator commands over MQTT, feedback store ---------------
    commands, snapshot_store = None, None
    if publisher is not None and config.commands.enabled:
        from edge.commands import CommandHandler
        from edge.feedback.store import FeedbackStore, SnapshotStore, default_db_path

        cc, pub = config.commands, publisher
        feedback = FeedbackStore(default_db_path(config), cc.recent_events, cc.snapshots)
        engine = rule_engine(bus)
        reply = lambda topic, payload: pub.publish_direct(topic, payload, qos=1)  # noqa: E731
        commands = CommandHandler(
            cc,
            pub.topics,
            reply,
            feedback,
            engine=engine,
            bus=bus,
            updater=updates.handle if updates is not None else None,
            max_update_bytes=config.update.max_bytes,
        ).start()
        bus.processors.append(commands)  # records events for feedback look-ups
        from edge.commands.metrics import CommandsCollector

        metrics.registry.register(CommandsCollector(commands))
        pub.subscribe(pub.topics.cmd("#"), commands.on_message, on_oversized=commands.on_oversized)
        snapshot_store = SnapshotStore(feedback)
    # --- end commands ---------------------------------------------------------------------------

    privacy_status = PrivacyStatus()  # edge.privacy: snapshots masked / withheld, on /metrics and /healthz
    metrics.registry.register(PrivacyCollector(privacy_status))

    sd = Notifier.from_env()  # systemd Type=notify; a no-op outside systemd
    sd_watchdog = Watchdog(sd, watchdog_interval())

    reload_requested = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if signum == getattr(signal, "SIGHUP", None):
            reload_requested.set()  # handled by the main loop, not inside the signal handler
            return
        log.info("received %s, shutting down", signal.Signals(signum).name)
        if dog is not None:  # bounded: a hung shutdown ends the process hard
            dog.shutdown_started()
        stop.set()

    check = HealthCheck(  # the rule is documented on HealthCheck; both limits in seconds
        camera_grace=config.metrics.health_camera_grace,
        backlog_max_age=config.metrics.health_backlog_max_age,
    )

    def health() -> dict[str, Any]:
        cameras = {w.name: bool(getattr(getattr(w.reader, "stats", None), "connected", False)) for w in workers}
        body = check(cameras, publisher, metrics.outbox, shutting_down=shutting_down.is_set())
        body["privacy"], problems = privacy_status.health()  # pictures withheld: a model failed
        body["problems"] = body["problems"] + problems
        body["ok"] = body["ok"] and not problems
        return {"device": config.device_id, **body}

    try:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                old_handlers[sig] = signal.signal(sig, on_signal)
        if config.metrics.enabled:
            try:
                server = MetricsServer(metrics, config.metrics.host, config.metrics.port, health).start()
            except OSError as err:  # delivering events matters more than being scraped
                log.error("metrics endpoint %s:%d unavailable: %s", config.metrics.host, config.metrics.port, err)
        sys.stderr.write("\n".join(startup_summary(config, server.port if server else None)) + "\n")
        sys.stderr.flush()
        if publisher is not None:
            publisher.start()
        _use_onnx_providers(config)
        scheduler = FairScheduler(config.runtime.concurrency)
        _one_opencv_thread_per_camera(config, scheduler.slots)
        if real_pipeline:
            from edge.inference import shared

            shared.configure(scheduler.slots)  # a shared model serves that many cameras at once
        progress = dog.startup_progress if dog is not None else None
        # ``models`` keeps the shared models loaded while this run lasts
        models_ready, models = _load_models(config, stop, progress) if real_pipeline else (None, [])
        for name, cam_cfg in config.cameras.items():
            if not cam_cfg.enabled or stop.is_set():
                continue
            log.info("camera %s: %s", name, redact_url(cam_cfg.url))
            w = CameraWorker(
                name, cam_cfg, config, bus, metrics, stop, camera_factory, pipeline_factory, publisher, scheduler
            )
            w.snapshot_store = snapshot_store
            if w.snapshots is not None:
                w.privacy = snapshot_privacy(name, cam_cfg, config, privacy_status)
            w.models_ready = models_ready
            workers.append(w)
            w.start()
        if dog is not None:
            dog.add_check(lambda: _stuck_camera(workers, config.watchdog.stuck_timeout))
        starting = True
        ready = False  # READY=1 once every camera loaded its models (or failed): TensorRT builds take minutes
        stats_every = config.mqtt.stats_interval if config.mqtt else None
        next_stats = time.monotonic() + (stats_every or 0)
        while not stop.wait(0.2):
            if starting and all(w.started.is_set() for w in workers):
                starting = False
                log.info("started %d camera(s) in %.1f s", len(workers), time.monotonic() - started)
                if dog is not None:
                    dog.startup_done()
            if any(w.crashed is not None for w in workers):
                break  # a dead camera must not run on unnoticed: exit non-zero, the service manager restarts
            # --- update: confirm or roll back a pending update; restart for an applied one ---------
            if updates is not None and updates.poll(
                {w.name: bool(getattr(getattr(w.reader, "stats", None), "connected", False)) for w in workers}
            ):
                break
            # --- end update ---------------------------------------------------------------------
            bus.tick(time.time())  # time-based rules (overstay, unresolved visits, screen time)
            if reload_requested.is_set():
                reload_requested.clear()
                reload_rules(config_path, bus)
            if not ready and all(w.loaded.is_set() or w.restarts or w.done.is_set() for w in workers):
                ready = sd.ready(f"{len(workers)} camera(s) running") or True
            if ready:
                sd_watchdog.tick(max((w.last_frame for w in workers), default=None))  # fed only while frames flow
            if workers and all(w.done.is_set() for w in workers):
                log.info("all sources finished")
                break
            if publisher is not None and stats_every and time.monotonic() >= next_stats:
                next_stats = time.monotonic() + stats_every
                payload = json.dumps(stats_payload(workers, bus, metrics, started), separators=(",", ":"))
                publisher.publish_direct(publisher.topics.stats, payload, qos=0)
    finally:
        if dog is not None:
            dog.shutdown_started()
        sd.stopping()
        shutting_down.set()
        stop.set()
        for w in workers:
            w.stop_reader()
        join_until = time.monotonic() + 15  # for all cameras together
        for w in workers:
            w.thread.join(timeout=max(0.0, join_until - time.monotonic()))
            if w.thread.is_alive():
                log.warning("camera %s did not stop in time", w.name)
        for w in workers:  # queued (masked) snapshots go out before MQTT drains
            if w.snapshot_worker is not None:
                w.snapshot_worker.close(max(0.5, join_until - time.monotonic()))
        if commands is not None:  # before the bus closes: a running ack still emits its events
            commands.stop()
            log.info("commands: %s", " ".join(f"{k}={v}" for k, v in commands.counts().items()))
        bus.close()  # MQTT drains, says offline; sequence numbers saved
        if commands is not None:
            commands.store.close()
        if server is not None:
            server.stop()
        for signum, handler in old_handlers.items():
            signal.signal(signum, handler)
    if dog is not None:  # shut down in time: stop watching
        dog.stop()
    crashed = [w.name for w in workers if w.crashed is not None]
    if crashed:
        log.error("stopped after %.0f s: camera worker(s) %s crashed", time.monotonic() - started, ", ".join(crashed))
        return EXIT_CAMERA_CRASHED
    log.info("stopped after %.0f s", time.monotonic() - started)
    return 0


def _start_watchdog(config: AppConfig) -> Any:
    from edge.watchdog import Watchdog

    wc = config.watchdog
    return Watchdog(wc.startup_timeout, wc.stuck_timeout, wc.shutdown_timeout).start()


def _stuck_camera(workers: list[CameraWorker], limit: float) -> tuple[str, int | None] | None:
    """A watchdog check: a camera thread on one frame for more than ``limit`` s while its
    reader keeps delivering frames (a native call that never returns)."""
    now = time.monotonic()
    for w in list(workers):
        since = w.busy_since
        if since is None or now - since < limit:
            continue
        last = float(getattr(getattr(w.reader, "stats", None), "last_frame_time", 0.0) or 0.0)
        if last > w.busy_wall:
            why = f"camera {w.name} stuck: one frame for {now - since:.0f} s while its reader has frames"
            return why, w.thread.ident
    return None


def _model_names(config: AppConfig) -> tuple[list[str], list[Any]]:
    """Every model the enabled cameras name, and their enabled plates configs."""
    names: list[str] = []
    plates: list[Any] = []
    for cam in config.cameras.values():
        if not cam.enabled:
            continue
        d = cam.detect
        names += [n for n in (d.model, d.attributes_model, d.type_model, d.classifier_model) if n and n not in names]
        if cam.plates is not None and cam.plates.enabled:
            plates.append(cam.plates)
    return names, plates


def startup_summary(config: AppConfig, metrics_port: int | None) -> list[str]:
    """What ``edge run`` prints on stderr as it starts: the cameras (credentials masked), the
    models, where events go and where ``/metrics`` is (``metrics_port``: the bound port, None
    when the endpoint is off or could not start)."""
    cams = config.cameras
    lines = [f"edge: device {config.device_id}, {sum(c.enabled for c in cams.values())} of {len(cams)} camera(s)"]
    for name, cam in cams.items():
        lines.append(f"  camera {name}: {redact_text(redact_url(cam.url))}" + ("" if cam.enabled else " (disabled)"))
    names, plates = _model_names(config)
    models = names + [f"{p.detector_model} + {p.ocr_model} (plates)" for p in plates]
    lines.append(f"  models: {', '.join(dict.fromkeys(models)) or 'none'}")
    sinks = []
    if config.mqtt is not None:
        m = config.mqtt
        scheme = "mqtts" if m.tls or m.tls_ca or m.tls_cert else "mqtt"
        sinks.append(f"MQTT {scheme}://{m.host}:{m.port} topics {m.topic_prefix}/{config.device_id}/...")
    if config.outputs.jsonl is not None:
        sinks.append(f"JSON lines {config.outputs.jsonl}")
    if config.outputs.stdout:
        sinks.append("stdout")
    lines.append(f"  events: {', '.join(sinks) or 'nowhere (no mqtt, outputs.jsonl or outputs.stdout)'}")
    mc = config.metrics
    if not mc.enabled:
        lines.append("  metrics: off (metrics.enabled: false)")
    elif metrics_port is None:
        lines.append(f"  metrics: unavailable on {mc.host}:{mc.port} (see the error above)")
    else:
        everywhere = mc.host in ("0.0.0.0", "::", "")  # noqa: S104 - reporting the configured bind address
        host = "localhost" if everywhere else (f"[{mc.host}]" if ":" in mc.host else mc.host)
        where = " (all interfaces)" if everywhere else ""
        lines.append(f"  metrics: http://{host}:{metrics_port}/metrics, health /healthz{where}")
    return lines


def _load_models(
    config: AppConfig, stop: threading.Event, progress: Callable[[], None] | None = None
) -> tuple[threading.Event, list[Any]]:
    """Load every model once, one at a time, before any camera builds its pipeline (cameras
    share them); the returned event is set when done, the list holds the models (keep it
    while the appliance runs: shared models are freed when nothing uses them). Cameras
    connect meanwhile.

    Loading runs on its own thread so the main thread stays responsive to SIGTERM; a model
    that fails is logged here and fails its cameras again (each retries on its own).
    """
    from edge.inference.shared import preload

    names, plates = _model_names(config)
    opts: dict[str, Any] = config.model_options()
    if progress is not None:  # each file pulled and each model loaded restarts the start-up clock
        tick = progress
        opts["progress"] = lambda _msg: tick()

    ready = threading.Event()
    held: list[Any] = []

    def load() -> None:
        try:
            _load_all()
        finally:
            ready.set()

    def _load_all() -> None:
        t0 = time.monotonic()
        for name in names:
            if stop.is_set():
                return
            try:
                held.extend(preload([name], opts))
            except Exception as err:  # noqa: BLE001 - the camera reports it again and retries
                log.error("model %s: %s", name, err)
            if progress is not None:
                progress()
        for cfg in plates:
            try:
                held.extend(preload([], opts, [cfg]))
            except Exception as err:  # noqa: BLE001
                log.error("plate models %s/%s: %s", cfg.detector_model, cfg.ocr_model, err)
        log.info("models loaded in %.1f s", time.monotonic() - t0)

    threading.Thread(target=load, name="edge-models", daemon=True).start()
    return ready, held
