"""``edge run``: cameras -> pipeline -> events -> sinks, until SIGTERM/SIGINT.

:class:`App` owns every subsystem and starts them in boot order, one ``start_x`` each
(watchdog, systemd, signals, metrics server, feedback store, delivery, updates, commands,
privacy, publisher, inference runtime, models, camera workers), runs the main loop
(:meth:`App.wait`) and stops them in reverse order. Shutdown order matters for delivery:
readers stop, pipelines close their open tracks (``end`` events), every event is in the
outbox, the publisher drains for ``mqtt.drain_timeout`` seconds, the status goes ``offline``
and the rest of the backlog waits on disk for the next start. ``/healthz`` answers ("shutting
down") and a second SIGTERM is caught until the very end.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, Any

from edge.app.delivery import build_publisher, build_run_bus, rule_engine
from edge.app.models import load_models, make_pool, one_opencv_thread_per_camera, pool_settings, run_parallel
from edge.app.seams import CameraFactory, PipelineFactory, camera_status
from edge.app.summary import startup_summary, stats_payload
from edge.app.worker import CameraWorker
from edge.clock import SystemClock
from edge.config import AppConfig, CameraConfig
from edge.events.bus import Emitter, EventBus, ProcessorFactory
from edge.events.mqtt import MqttPublisher
from edge.inference.pool import ModelPool
from edge.inference.scheduler import FairScheduler
from edge.metrics import HealthCheck, Metrics, MetricsServer
from edge.privacy import PrivacyCollector, PrivacyStatus, snapshot_privacy
from edge.redact import redact_url
from edge.rules import RuleEngine, build_processors
from edge.systemd import Notifier, SystemdWatchdog, watchdog_interval

if TYPE_CHECKING:
    from edge.commands import CommandHandler
    from edge.feedback.store import FeedbackStore, SnapshotStore
    from edge.update.manager import UpdateSession
    from edge.watchdog import Watchdog

log = logging.getLogger("edge.app")

EXIT_CAMERA_CRASHED = 3  # run()'s exit code when a camera worker died of a bug or its models fail every frame
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_SignalHandler = Callable[[int, FrameType | None], object] | int | None


class App:
    """The appliance: every subsystem of ``edge run``, started in boot order and stopped in reverse.

    ``camera_factory``/``pipeline_factory`` default to ``edge.sources.open_camera`` and
    ``edge.pipeline.Pipeline`` (tests inject fakes); with the real pipeline every model is
    loaded once before any camera builds its pipeline. ``updates`` is the session of
    :func:`edge.update.run_with_updates`; ``watchdog`` ends a hung process (edge.watchdog).

    ``pool`` holds the run's loaded models (:class:`~edge.inference.pool.ModelPool`); without
    one the App makes its own from the config (:func:`edge.app.models.make_pool`: ONNX
    providers, one stream per processing slot). It is passed to the pipelines, their plate
    stages, the start-up preload and the model checks of remote updates; nothing here uses the
    process's default pool.
    """

    def __init__(
        self,
        config: AppConfig,
        stop: threading.Event | None = None,
        *,
        camera_factory: CameraFactory | None = None,
        pipeline_factory: PipelineFactory | None = None,
        config_path: str | None = None,
        updates: UpdateSession | None = None,
        watchdog: bool = False,
        pool: ModelPool | None = None,
    ) -> None:
        self.config, self.config_path, self.updates = config, config_path, updates
        self.stop_event = stop or threading.Event()
        self.camera_factory, self.pipeline_factory = camera_factory, pipeline_factory
        self.real_pipeline = pipeline_factory is None
        self.use_watchdog = watchdog
        # made here, not in start_inference: a remote update may be checked (its models loaded
        # into this pool) as soon as the command handler runs
        self.pool = pool or make_pool(config, run_parallel(config) if self.real_pipeline else 1)
        self.metrics = Metrics(config.device_id)
        self.privacy_status = PrivacyStatus()  # snapshots masked / withheld, on /metrics and /healthz
        self.check = HealthCheck(  # the rule is documented on HealthCheck; both limits in seconds
            camera_grace=config.metrics.health_camera_grace,
            backlog_max_age=config.metrics.health_backlog_max_age,
        )
        self.started = time.monotonic()
        self.shutting_down = threading.Event()
        self.reload_requested = threading.Event()
        self.workers: list[CameraWorker] = []
        self.dog: Watchdog | None = None
        self.sd: Notifier | None = None
        self.sd_watchdog: SystemdWatchdog | None = None
        self.old_handlers: dict[int, _SignalHandler] = {}
        self.server: MetricsServer | None = None
        self.feedback: FeedbackStore | None = None
        self.snapshot_store: SnapshotStore | None = None
        self.publisher: MqttPublisher | None = None
        self.bus: EventBus | None = None
        self.commands: CommandHandler | None = None
        self.scheduler: FairScheduler | None = None
        self.models_ready: threading.Event | None = None
        self.models: list[object] = []  # keeps the shared models loaded while this run lasts

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every subsystem, in boot order."""
        self.started = time.monotonic()
        self.start_watchdog()
        self.start_systemd()
        self.start_signals()
        self.start_metrics_server()
        self.start_feedback_store()
        self.start_delivery()
        self.start_updates()
        self.start_commands()
        self.start_privacy()
        self.start_publisher()
        self.start_inference()
        self.start_models()
        self.start_workers()

    def stop(self) -> None:
        """Announce the shutdown (watchdog, systemd, ``/healthz``), then stop every subsystem
        that started, in reverse boot order."""
        self.begin_shutdown()  # systemd's part of the shutdown: STOPPING=1
        self.stop_workers()
        self.stop_models()
        # inference, publisher, privacy, updates: nothing of their own to stop (the bus closes the publisher)
        self.stop_commands()
        self.stop_delivery()
        self.stop_feedback_store()
        self.stop_metrics_server()
        self.stop_signals()
        self.stop_watchdog()

    def exit_code(self) -> int:
        """0 after a clean shutdown, :data:`EXIT_CAMERA_CRASHED` when a camera worker died."""
        crashed = [w.name for w in self.workers if w.crashed is not None]
        took = time.monotonic() - self.started
        if crashed:
            log.error("stopped after %.0f s: camera worker(s) %s crashed", took, ", ".join(crashed))
            return EXIT_CAMERA_CRASHED
        log.info("stopped after %.0f s", took)
        return 0

    # -- watchdog (edge.watchdog): a hung start-up, camera thread or shutdown ends the process ----

    def start_watchdog(self) -> None:
        """Start the process watchdog, if this run has one."""
        if self.use_watchdog:
            from edge.watchdog import Watchdog

            wc = self.config.watchdog
            self.dog = Watchdog(wc.startup_timeout, wc.stuck_timeout, wc.shutdown_timeout).start()

    def stop_watchdog(self) -> None:
        """Shut down in time: stop watching."""
        if self.dog is not None:
            self.dog.stop()

    # -- systemd (Type=notify; a no-op outside systemd) ------------------------------------------

    def start_systemd(self) -> None:
        """Connect to systemd's notify socket (READY=1 and the watchdog come from the main loop)."""
        self.sd = Notifier.from_env()
        self.sd_watchdog = SystemdWatchdog(self.sd, watchdog_interval())

    def begin_shutdown(self) -> None:
        """The first step of every shutdown: bounded by the watchdog, STOPPING=1 to systemd,
        ``/healthz`` says so, and every thread sees the stop event."""
        if self.dog is not None:
            self.dog.shutdown_started()
        if self.sd is not None:
            self.sd.stopping()
        self.shutting_down.set()
        self.stop_event.set()

    # -- signals: SIGTERM/SIGINT stop, SIGHUP reloads the rules -----------------------------------

    def start_signals(self) -> None:
        """Install the signal handlers (only the main thread may)."""
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self.old_handlers[sig] = signal.signal(sig, self.on_signal)

    def stop_signals(self) -> None:
        """Give the signals back to their previous handlers."""
        for signum, handler in self.old_handlers.items():
            signal.signal(signum, handler)
        self.old_handlers.clear()

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """SIGHUP: reload the rules (in the main loop, not here); SIGTERM/SIGINT: stop."""
        if signum == signal.SIGHUP:
            self.reload_requested.set()
            return
        log.info("received %s, shutting down", signal.Signals(signum).name)
        if self.dog is not None:  # bounded: a hung shutdown ends the process hard
            self.dog.shutdown_started()
        self.stop_event.set()

    # -- metrics server: /metrics and /healthz ----------------------------------------------------

    def start_metrics_server(self) -> None:
        """Serve ``/metrics`` and ``/healthz``; a port that cannot be bound is logged, not fatal."""
        mc = self.config.metrics
        if not mc.enabled:
            return
        try:
            self.server = MetricsServer(self.metrics, mc.host, mc.port, self.health).start()
        except OSError as err:  # delivering events matters more than being scraped
            log.error("metrics endpoint %s:%d unavailable: %s", mc.host, mc.port, err)

    def stop_metrics_server(self) -> None:
        """Stop serving (after the delivery drained: ``/healthz`` said "shutting down" until then)."""
        if self.server is not None:
            self.server.stop()

    def health(self) -> dict[str, object]:
        """The ``/healthz`` body."""
        cameras = {w.name: camera_status(w.reader).up for w in self.workers}
        outbox = self.metrics.outbox
        body = self.check(cameras, self.publisher, outbox, shutting_down=self.shutting_down.is_set())
        body["privacy"], problems = self.privacy_status.health()  # pictures withheld: a model failed
        body["problems"] = body["problems"] + problems
        body["ok"] = body["ok"] and not problems
        return {"device": self.config.device_id, **body}

    # -- feedback store and commands (edge.commands): operator commands over MQTT -----------------

    def start_feedback_store(self) -> None:
        """Open the feedback store when MQTT commands are on (recent events, snapshots)."""
        cc = self.config.commands
        if self.config.mqtt is None or not cc.enabled:
            return
        from edge.feedback.store import FeedbackStore, SnapshotStore, default_db_path

        self.feedback = FeedbackStore(default_db_path(self.config), cc.recent_events, cc.snapshots)
        self.snapshot_store = SnapshotStore(self.feedback)

    def stop_feedback_store(self) -> None:
        """Close the store (after the bus: its last events are recorded)."""
        if self.feedback is not None:
            self.feedback.close()

    def _command_handler(self, engine: RuleEngine | None) -> ProcessorFactory:
        """Builds the command handler on the bus it emits ``ack`` events into (a bus processor:
        it records events for feedback look-ups)."""
        from edge.commands import CommandHandler

        pub, feedback, cc = self.publisher, self.feedback, self.config.commands
        assert pub is not None and feedback is not None  # start_feedback_store opened it for MQTT
        updater = self._update if self.updates is not None else None

        def build(bus: Emitter) -> CommandHandler:
            self.commands = CommandHandler(
                cc,
                pub.topics,
                lambda topic, payload: pub.publish_direct(topic, payload, qos=1),
                feedback,
                engine=engine,
                bus=bus,
                updater=updater,
                max_update_bytes=self.config.update.max_bytes,
            )
            return self.commands

        return build

    def _update(self, data: dict[str, Any]) -> dict[str, Any]:
        """The ``update`` command: the new models are checked and loaded in this run's pool (the
        next run finds them there when its pool settings are the same, see :func:`run`)."""
        assert self.updates is not None  # only wired when there is an update session
        return self.updates.handle(data, pool=self.pool)

    def start_commands(self) -> None:
        """Start the command worker and subscribe to ``cmd/#``."""
        if self.commands is None or self.publisher is None:
            return
        from edge.commands.metrics import CommandsCollector

        commands, pub = self.commands.start(), self.publisher
        self.metrics.registry.register(CommandsCollector(commands))
        pub.subscribe(pub.topics.cmd("#"), commands.on_message, on_oversized=commands.on_oversized)

    def stop_commands(self) -> None:
        """Finish the queued commands (before the bus closes: a running ack still emits its events)."""
        if self.commands is not None:
            self.commands.stop()
            log.info("commands: %s", " ".join(f"{k}={v}" for k, v in self.commands.counts().items()))

    # -- delivery: MQTT publisher over the outbox, the event bus with its sinks and rules ---------

    def start_delivery(self) -> None:
        """Build the publisher (not connected yet) and the event bus with every processor."""
        config = self.config
        self.publisher = build_publisher(config, self.metrics)
        processors = build_processors(config, SystemClock(), None)
        emitting = [self._command_handler(rule_engine(processors))] if self.feedback is not None else []
        self.bus = build_run_bus(config, self.publisher, self.metrics, processors=processors, emitting=emitting)

    def stop_delivery(self) -> None:
        """Close the bus: processors emit their last events, MQTT drains and says offline,
        sequence numbers are saved."""
        if self.bus is not None:
            self.bus.close()

    def start_publisher(self) -> None:
        """Print the start-up summary, then connect to the broker."""
        sys.stderr.write("\n".join(startup_summary(self.config, self.server.port if self.server else None)) + "\n")
        sys.stderr.flush()
        if self.publisher is not None:
            self.publisher.start()

    # -- updates (edge.update): versions in the retained status and in metrics --------------------

    def start_updates(self) -> None:
        """Report versions on ``/metrics`` and (without Home Assistant) in the retained status."""
        updates, pub, mqtt = self.updates, self.publisher, self.config.mqtt
        if updates is None:
            return
        from edge.update.metrics import UpdateCollector

        self.metrics.registry.register(UpdateCollector(updates.manager))
        if pub is not None and not (mqtt is not None and mqtt.home_assistant):
            # (Home Assistant needs the plain online/offline status)
            pub.set_status(*updates.status_payloads())
            updates.manager.on_change = lambda: pub.set_status(*updates.status_payloads())

    # -- privacy (edge.privacy): snapshots masked or withheld -------------------------------------

    def start_privacy(self) -> None:
        """Report masked and withheld snapshots on ``/metrics``."""
        self.metrics.registry.register(PrivacyCollector(self.privacy_status))

    # -- inference runtime and models -------------------------------------------------------------

    def start_inference(self) -> None:
        """Fair processing turns and OpenCV threads (the model pool, with the ONNX Runtime
        providers and a stream per turn, was made with the App)."""
        self.scheduler = FairScheduler(self.config.runtime.concurrency)
        one_opencv_thread_per_camera(self.config, self.scheduler.slots)

    def start_models(self) -> None:
        """Load every model once, on a thread, while the cameras connect (real pipeline only)."""
        if self.real_pipeline:
            progress = self.dog.startup_progress if self.dog is not None else None
            self.models_ready, self.models = load_models(self.config, self.stop_event, progress, self.pool)

    def stop_models(self) -> None:
        """Let go of the shared models (freed once no camera uses them)."""
        self.models = []

    # -- camera workers ---------------------------------------------------------------------------

    def start_workers(self) -> None:
        """One supervised thread per enabled camera; the watchdog checks none is stuck."""
        camera_factory, pipeline_factory = self.camera_factory, self.pipeline_factory
        real = camera_factory is None and pipeline_factory is None  # both take a RateDemand
        if camera_factory is None or pipeline_factory is None:
            from edge.pipeline import Pipeline  # lazy: imported only for a real run
            from edge.sources import open_camera
            from edge.sources.sampling import RateDemand

            # the real pipeline loads its models (and its plate stage's) from this run's pool
            camera_factory = camera_factory or open_camera
            pipeline_factory = pipeline_factory or partial(Pipeline, pool=self.pool)
        for name, cam_cfg in self.config.cameras.items():
            if not cam_cfg.enabled or self.stop_event.is_set():
                continue
            log.info("camera %s: %s", name, redact_url(cam_cfg.url))
            cf, pf = camera_factory, pipeline_factory
            if real:  # the pipeline asks its reader for burst-rate frames only while needed
                demand = RateDemand()
                cf, pf = partial(open_camera, demand=demand), partial(Pipeline, pool=self.pool, demand=demand)
            w = self._worker(name, cam_cfg, cf, pf)
            self.workers.append(w)
            w.start()
        if self.dog is not None:
            limit = self.config.watchdog.stuck_timeout
            self.dog.add_check(lambda: stuck_camera(self.workers, limit))

    def _worker(
        self, name: str, cam_cfg: CameraConfig, camera_factory: CameraFactory, pipeline_factory: PipelineFactory
    ) -> CameraWorker:
        assert self.bus is not None  # start_delivery came first
        mqtt = self.config.mqtt
        snapshots = mqtt is not None and mqtt.snapshots and self.publisher is not None
        return CameraWorker(
            name,
            cam_cfg,
            self.config,
            self.bus,
            self.metrics,
            self.stop_event,
            camera_factory,
            pipeline_factory,
            self.publisher,
            self.scheduler,
            models_ready=self.models_ready,
            snapshot_store=self.snapshot_store,
            privacy=snapshot_privacy(name, cam_cfg, self.config, self.privacy_status, self.pool) if snapshots else None,
        )

    def stop_workers(self) -> None:
        """Stop the readers, wait for the camera threads (15 s for all together), then let the
        queued (masked) snapshots go out before MQTT drains."""
        for w in self.workers:
            w.stop_reader()
        join_until = time.monotonic() + 15
        for w in self.workers:
            w.thread.join(timeout=max(0.0, join_until - time.monotonic()))
            if w.thread.is_alive():
                log.warning("camera %s did not stop in time", w.name)
        for w in self.workers:
            if w.snapshot_worker is not None:
                w.snapshot_worker.close(max(0.5, join_until - time.monotonic()))

    # -- main loop --------------------------------------------------------------------------------

    def wait(self) -> None:
        """Run until stopped, a camera crashed, an update restarts us, or every (file) source finished."""
        starting, ready = True, False  # READY=1 once every camera loaded its models (or failed)
        stats_every = self.config.mqtt.stats_interval if self.config.mqtt else None
        next_stats = time.monotonic() + (stats_every or 0)
        workers, bus = self.workers, self.bus
        assert bus is not None
        while not self.stop_event.wait(0.2):
            if starting and all(w.started.is_set() for w in workers):
                starting = False
                log.info("started %d camera(s) in %.1f s", len(workers), time.monotonic() - self.started)
                if self.dog is not None:
                    self.dog.startup_done()
            if any(w.crashed is not None for w in workers):
                break  # a dead camera must not run on unnoticed: exit non-zero, the service manager restarts
            if self.updates is not None and self.updates.poll({w.name: camera_status(w.reader).up for w in workers}):
                break  # confirmed or rolled back a pending update, or an applied one restarts us
            bus.tick(time.time())  # time-based rules (overstay, unresolved visits, screen time)
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                reload_rules(self.config_path, bus)
            ready = self._notify_systemd(ready)
            if workers and all(w.done.is_set() for w in workers):
                log.info("all sources finished")
                break
            if self.publisher is not None and stats_every and time.monotonic() >= next_stats:
                next_stats = time.monotonic() + stats_every
                self._publish_stats(self.publisher, bus)

    def _notify_systemd(self, ready: bool) -> bool:
        """READY=1 once every camera loaded its models (TensorRT builds take minutes), then the
        systemd watchdog, fed only while frames flow."""
        workers = self.workers
        if not ready and all(w.loaded.is_set() or w.restarts or w.done.is_set() for w in workers):
            ready = (self.sd is not None and self.sd.ready(f"{len(workers)} camera(s) running")) or True
        if ready and self.sd_watchdog is not None:
            self.sd_watchdog.tick(max((w.last_frame for w in workers), default=None))
        return ready

    def _publish_stats(self, publisher: MqttPublisher, bus: EventBus) -> None:
        payload = json.dumps(stats_payload(self.workers, bus, self.metrics, self.started), separators=(",", ":"))
        publisher.publish_direct(publisher.topics.stats, payload, qos=0)


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


def stuck_camera(workers: list[CameraWorker], limit: float) -> tuple[str, int | None] | None:
    """A watchdog check: a camera thread on one frame for more than ``limit`` s while its
    reader keeps delivering frames (a native call that never returns)."""
    now = time.monotonic()
    for w in list(workers):
        since = w.busy_since
        if since is None or now - since < limit:
            continue
        if camera_status(w.reader).last_frame_time > w.busy_wall:
            why = f"camera {w.name} stuck: one frame for {now - since:.0f} s while its reader has frames"
            return why, w.thread.ident
    return None


def run(
    config: AppConfig,
    stop_event: threading.Event | None = None,
    *,
    camera_factory: CameraFactory | None = None,
    pipeline_factory: PipelineFactory | None = None,
    config_path: str | None = None,
    updates: UpdateSession | None = None,
    watchdog: bool | None = None,
    pool: ModelPool | None = None,
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

    ``watchdog`` (default: on for a real run, i.e. without test factories and without a
    caller's ``stop_event``, when ``config.watchdog.enabled``) ends the process with exit 70 on
    a hung start-up, a stuck camera thread or a hung shutdown (edge.watchdog).

    ``pool``: the models' pool (default: the App makes one from ``config``; with updates, see
    :func:`_keeping_pool`).
    """
    real = camera_factory is None and pipeline_factory is None
    if updates is None and config.update.enabled and config_path is not None:
        from edge.update import run_with_updates

        return run_with_updates(
            _keeping_pool(pool, real),
            config,
            config_path,
            stop_event,
            camera_factory=camera_factory,
            pipeline_factory=pipeline_factory,
        )
    if watchdog is None:
        own_stop = stop_event is None or updates is not None  # run_with_updates passes its own
        watchdog = own_stop and real and config.watchdog.enabled
    app = App(
        config,
        stop_event,
        camera_factory=camera_factory,
        pipeline_factory=pipeline_factory,
        config_path=config_path,
        updates=updates,
        watchdog=watchdog,
        pool=pool,
    )
    try:
        app.start()
        app.wait()
    finally:
        app.stop()
    return app.exit_code()


def _keeping_pool(pool: ModelPool | None, real: bool) -> Callable[..., int]:
    """:func:`run` for :func:`edge.update.run_with_updates`: one model pool lasts across the
    restarts while the pool settings stay the same, so the run after an update finds the models
    the update checked (in the running App's pool) already loaded; new providers or streams get
    a new pool. ``real``: the real pipeline (a stream per processing slot)."""
    kept = [pool] if pool is not None else []

    def run_kept(config: AppConfig, stop: threading.Event, **kwargs: Any) -> int:
        want = pool_settings(config, run_parallel(config) if real else 1)
        if not kept or kept[0].settings != want:
            kept[:] = [ModelPool(want)]
        return run(config, stop, pool=kept[0], **kwargs)

    return run_kept
