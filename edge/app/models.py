"""Start-up of the inference side of ``edge run`` (and ``edge replay``/``edge demo``): the run's
:class:`~edge.inference.pool.ModelPool` made from the config (ONNX Runtime providers, parallel
streams, sharing), OpenCV's threads, and every model loaded once before any camera builds its
pipeline."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from edge.config import AppConfig, PlatesConfig
from edge.inference.backends import OnnxProviders
from edge.inference.pool import ModelPool, PoolSettings, sharing_enabled
from edge.inference.scheduler import FairScheduler

log = logging.getLogger("edge.app")


def pool_settings(config: AppConfig, parallel: int = 1) -> PoolSettings:
    """How the models of a run of ``config`` are shared and run: ``runtime.providers`` and
    ``runtime.provider_options`` for ONNX Runtime, ``parallel`` inferences per shared model
    (``edge run``: :func:`run_parallel`), one copy per camera under ``EDGE_SHARED_MODELS=0``."""
    rt = config.runtime
    onnx = OnnxProviders(tuple(rt.providers), dict(rt.provider_options))
    return PoolSettings(parallel=max(1, int(parallel)), sharing=sharing_enabled(), onnx=onnx)


def make_pool(config: AppConfig, parallel: int = 1) -> ModelPool:
    """A new model pool for one run of ``config`` (``edge run``, ``edge replay``, ``edge demo``):
    the run owns it and passes it to everything that loads a model."""
    return ModelPool(pool_settings(config, parallel))


def run_parallel(config: AppConfig) -> int:
    """Inferences one shared model runs at once in ``edge run``: one per processing slot
    (``runtime.concurrency``), as many cameras as process frames at the same time."""
    return FairScheduler(config.runtime.concurrency).slots


def one_opencv_thread_per_camera(config: AppConfig, slots: int) -> None:
    """With at least as many cameras as processing slots, the camera threads already keep the
    cores busy: OpenCV's own thread pool then only adds hand-over cost (the motion gate's
    shrink: 1.19 CPU-ms with 2 threads against 0.90 with 1), so each call runs on its caller."""
    if sum(1 for c in config.cameras.values() if c.enabled) >= slots:
        import cv2

        cv2.setNumThreads(1)


def model_names(config: AppConfig) -> tuple[list[str], list[PlatesConfig]]:
    """Every model the enabled cameras name, and their enabled plates configs."""
    names: list[str] = []
    plates: list[PlatesConfig] = []
    for cam in config.cameras.values():
        if not cam.enabled:
            continue
        d = cam.detect
        names += [n for n in (d.model, d.attributes_model, d.type_model, d.classifier_model) if n and n not in names]
        if cam.plates is not None and cam.plates.enabled:
            plates.append(cam.plates)
    return names, plates


def load_models(
    config: AppConfig,
    stop: threading.Event,
    progress: Callable[[], None] | None = None,
    pool: ModelPool | None = None,
) -> tuple[threading.Event, list[object]]:
    """Load every model once, one at a time, before any camera builds its pipeline (cameras
    share them); the returned event is set when done, the list holds the models (keep it
    while the appliance runs: shared models are freed when nothing uses them). Cameras
    connect meanwhile.

    Loading runs on its own thread so the main thread stays responsive to SIGTERM; a model
    that fails is logged here and fails its cameras again (each retries on its own). ``pool``:
    the run's (default: a new one, :func:`make_pool`, with one stream per model).
    """
    from edge.inference.model import preload
    from edge.plates.reader import load_plate_reader

    pool = pool or make_pool(config)
    names, plates = model_names(config)
    opts: dict[str, object] = config.model_options()
    if progress is not None:  # each file pulled and each model loaded restarts the start-up clock
        tick = progress
        opts["progress"] = lambda _msg: tick()

    ready = threading.Event()
    held: list[object] = []

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
                held.extend(preload([name], opts, pool))
            except Exception as err:  # noqa: BLE001 - the camera reports it again and retries
                log.error("model %s: %s", name, err)
            if progress is not None:
                progress()
        for cfg in plates:
            try:
                held.append(load_plate_reader(cfg, opts, pool))
            except Exception as err:  # noqa: BLE001
                log.error("plate models %s/%s: %s", cfg.detector_model, cfg.ocr_model, err)
        log.info("models loaded in %.1f s", time.monotonic() - t0)

    threading.Thread(target=load, name="edge-models", daemon=True).start()
    return ready, held
