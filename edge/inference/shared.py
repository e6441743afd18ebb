"""One loaded model per (file, backend, device, options) for the whole appliance.

Every camera that names a model gets its own light :class:`~edge.inference.model.LoadedModel`
(its own recurrent ``state``, score threshold and timing) over one shared, thread-safe backend:

* OpenVINO: one ``CompiledModel`` and a small pool of ``InferRequest`` objects (a request
  is used by one thread at a time; outputs are copied before the request goes back).
* ONNX Runtime: one ``InferenceSession``; ``run`` is thread-safe.
* LiteRT: an ``Interpreter`` per concurrent caller (the runtime is not thread-safe), created
  on demand and reused.

Loading is serialised: one model at a time under one process-wide lock (OpenVINO deadlocked
when 16 camera threads compiled their own copies at the same moment). ``edge run`` loads every
model before the cameras start (:func:`preload`), so camera threads only find them here.

``EDGE_SHARED_MODELS=0`` turns sharing off (every caller loads its own copy, the old
behaviour) - for the baseline in ``bench/cameras.py`` only.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.inference.backends import Backend, load_backend

log = logging.getLogger("edge.inference.shared")

Key = tuple[str, str, int, str, str, int]

_LOAD_LOCK = threading.RLock()  # one load/compile at a time in the whole process
# weak: a model stays loaded while a camera (or edge run's start-up list) uses it, and is freed
# after the last user is gone (a config update that drops it, tests with their own caches)
_BACKENDS: weakref.WeakValueDictionary[Key, Backend] = weakref.WeakValueDictionary()
_STREAMS = 1  # inferences one shared model runs in parallel (edge run: its concurrency)


def configure(parallel: int) -> None:
    """How many inferences one shared model should run at the same time (OpenVINO streams);
    ``edge run`` sets its camera concurrency before loading. Affects models loaded later."""
    global _STREAMS
    _STREAMS = max(1, int(parallel))


def sharing_enabled() -> bool:
    """False when ``EDGE_SHARED_MODELS=0`` (the old one-copy-per-camera behaviour)."""
    return os.environ.get("EDGE_SHARED_MODELS", "1").strip().lower() not in {"0", "false", "no", "off"}


def shared_backend(kind: str, path: Path, threads: int = 2, device: str = "CPU", precision: str = "auto") -> Backend:
    """The process-wide backend for model file ``path`` (loaded on first use, serialised).

    Same arguments and errors as :func:`edge.inference.backends.load_backend`; the result is
    safe to call from many threads at once.
    """
    streams = _STREAMS if sharing_enabled() else 1
    key: Key = (kind, str(Path(path).resolve()), int(threads), device.upper(), precision, streams)
    backend = _BACKENDS.get(key)
    if backend is not None and sharing_enabled():
        return backend
    with _LOAD_LOCK:
        if sharing_enabled():
            backend = _BACKENDS.get(key)
            if backend is not None:
                return backend
        t0 = time.monotonic()
        loaded = load_backend(kind, Path(path), threads, device, precision, streams)
        backend = loaded if isinstance(loaded, _ThreadSafe) else _ThreadSafe(loaded)
        log.info("model %s loaded with %s in %.2f s", Path(path).name, kind, time.monotonic() - t0)
        if sharing_enabled():
            _BACKENDS[key] = backend
        return backend


def loaded_count() -> int:
    """How many distinct backends are loaded (for tests and metrics)."""
    return len(_BACKENDS)


def clear() -> None:
    """Forget every shared backend (tests)."""
    with _LOAD_LOCK:
        _BACKENDS.clear()
        _FILES.clear()


class _ThreadSafe(Backend):
    """Makes a backend callable from many threads: uses its own pool where it has one
    (``infer_pooled``), else a pool of clones (``clone()``), else a lock."""

    def __init__(self, inner: Backend, max_clones: int = 4) -> None:
        self.inner = inner
        self.key = inner.key
        self.inputs = inner.inputs
        self.outputs = inner.outputs
        self._native: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = getattr(
            inner, "infer_threadsafe", None
        )
        self._free: list[Backend] = [inner]
        self._made = 1
        self._max = max(1, max_clones)
        self._cond = threading.Condition()

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._native is not None:
            return self._native(feeds)
        be = self._acquire()
        try:
            return be.infer(feeds)
        finally:
            with self._cond:
                self._free.append(be)
                self._cond.notify()

    def _acquire(self) -> Backend:
        with self._cond:
            while True:
                if self._free:
                    return self._free.pop()
                clone = getattr(self.inner, "clone", None)
                if clone is not None and self._made < self._max:
                    self._made += 1
                    break
                self._cond.wait()
        try:
            be: Backend = clone()
        except Exception:
            with self._cond:
                self._made -= 1
            raise
        return be

    def metadata(self) -> dict[str, str]:
        return self.inner.metadata()

    def __getattr__(self, name: str) -> Any:  # e.g. backend-specific helpers
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


_FILES: dict[tuple[str, str, str], tuple[Any, Path]] = {}


def ensure_model_once(
    name: str, *, cache_dir: Path | None = None, mirror: str | None = None, progress: Any = None
) -> tuple[Any, Path]:
    """``edge.registry.ensure_model`` serialised, and checked (sha256) once per process."""
    from edge.registry import ensure_model

    key = (name, str(cache_dir), str(mirror))
    with _LOAD_LOCK:
        hit = _FILES.get(key)
        if hit is not None and sharing_enabled() and hit[1].is_dir():
            return hit
        manifest, folder = ensure_model(name, cache_dir=cache_dir, mirror=mirror, progress=progress)
        _FILES[key] = (manifest, folder)
        return manifest, folder


def preload(names: list[str], options: dict[str, Any], plates: list[Any] | None = None) -> list[Any]:
    """Load every model in ``names`` (and each plates config's models) once, one at a time.

    Returns the loaded objects: hold them while the models must stay loaded (shared models
    are freed when nothing uses them). Raises ModelError like ``load_model`` does.
    """
    from edge.inference.model import load_model

    held: list[Any] = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        held.append(load_model(name, **options))
    from edge.plates.reader import PlateReader

    done: set[Any] = set()
    for cfg in plates or ():
        key = (cfg.detector_model, cfg.ocr_model, cfg.backend)
        if key in done:
            continue
        done.add(key)
        held.append(PlateReader(cfg, **{k: v for k, v in options.items() if k != "progress"}))
    return held
