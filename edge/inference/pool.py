"""One loaded model per (file, backend, device, options) for the whole appliance: :class:`ModelPool`.

Every camera that names a model gets its own light :class:`~edge.inference.model.LoadedModel`
(its own recurrent ``state``, score threshold and timing) over one shared, thread-safe backend:

* OpenVINO: one ``CompiledModel`` and a small pool of ``InferRequest`` objects (a request
  is used by one thread at a time; outputs are copied before the request goes back).
* ONNX Runtime: one ``InferenceSession``; ``run`` is thread-safe.
* LiteRT: an ``Interpreter`` per concurrent caller (the runtime is not thread-safe), created
  on demand and reused.

Loading is serialised: one model at a time under the pool's lock (OpenVINO deadlocked when 16
camera threads compiled their own copies at the same moment). ``edge run`` loads every model
before the cameras start (:func:`edge.inference.model.preload`), so camera threads only find them here.

The pool is an object its owner creates and passes on (``load_model(..., pool=...)``,
``PlateReader(..., pool=...)``, ``Pipeline(..., pool=...)``): ``edge run``'s ``App``, ``edge
replay`` and ``edge demo`` each make their own from the config (``edge.app.models.make_pool``).
Library callers that pass none (a ``Pipeline`` or ``load_model`` in a script or test, the
privacy filters) use :func:`default_pool`, the pool of this
process. What a pool shares and how its models run is given when it is made
(:class:`PoolSettings`), not read from globals or the environment on every call:
``EDGE_SHARED_MODELS=0`` (the old one-copy-per-camera behaviour, for the baseline in
``bench/cameras.py`` only) is read when a pool is made.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.inference.backends import Backend, OnnxProviders, load_backend

if TYPE_CHECKING:
    from edge.registry import Manifest

log = logging.getLogger("edge.inference.shared")  # the name its log lines always had

Key = tuple[str, str, int, str, str, int]


def sharing_enabled() -> bool:
    """False when ``EDGE_SHARED_MODELS=0`` (the old one-copy-per-camera behaviour)."""
    return os.environ.get("EDGE_SHARED_MODELS", "1").strip().lower() not in {"0", "false", "no", "off"}


@dataclass(frozen=True)
class PoolSettings:
    """How a pool shares and runs its models.

    ``parallel``: inferences one shared model runs at the same time (OpenVINO streams; ``edge
    run``: its camera concurrency). ``sharing``: one backend per file and options (False: every
    caller loads its own copy). ``onnx``: ONNX Runtime execution providers (``runtime.providers``).
    """

    parallel: int = 1
    sharing: bool = True
    onnx: OnnxProviders = field(default_factory=OnnxProviders)


class ModelPool:
    """The loaded models of one appliance run: backends shared by file and options, and the
    registry checks (pull, sha256) done once per model. Thread-safe; its owner keeps it for as
    long as the run lasts (a model stays loaded while something holds it)."""

    def __init__(self, settings: PoolSettings | None = None) -> None:
        self.settings = settings or PoolSettings()
        self._lock = threading.RLock()  # one load/compile/pull at a time
        # weak: a model stays loaded while a camera (or edge run's start-up list) uses it, and is
        # freed after the last user is gone (a config update that drops it, tests)
        self._backends: weakref.WeakValueDictionary[Key, Backend] = weakref.WeakValueDictionary()
        self._files: dict[tuple[str, str, str], tuple[Manifest, Path]] = {}

    def configure(
        self,
        *,
        parallel: int | None = None,
        providers: list[str] | None = None,
        provider_options: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Change how models loaded from now on run (a library caller of :func:`default_pool`,
        before loading any): ``parallel`` inferences per shared model, ONNX Runtime ``providers``
        and their options. An owner gives its pool's settings when it makes it."""
        with self._lock:
            s = self.settings
            if parallel is not None:
                s = replace(s, parallel=max(1, int(parallel)))
            if providers is not None:
                s = replace(s, onnx=OnnxProviders(tuple(providers), dict(provider_options or {})))
            self.settings = s

    def backend(self, kind: str, path: Path, threads: int = 2, device: str = "CPU", precision: str = "auto") -> Backend:
        """The pool's backend for model file ``path`` (loaded on first use, serialised).

        Same arguments and errors as :func:`edge.inference.backends.load_backend`; the result is
        safe to call from many threads at once.
        """
        s = self.settings
        streams = s.parallel if s.sharing else 1
        key: Key = (kind, str(Path(path).resolve()), int(threads), device.upper(), precision, streams)
        backend = self._backends.get(key) if s.sharing else None
        if backend is not None:
            return backend
        with self._lock:
            backend = self._backends.get(key) if s.sharing else None
            if backend is not None:
                return backend
            t0 = time.monotonic()
            loaded = load_backend(kind, Path(path), threads, device, precision, streams, onnx=s.onnx)
            backend = loaded if isinstance(loaded, _ThreadSafe) else _ThreadSafe(loaded)
            log.info("model %s loaded with %s in %.2f s", Path(path).name, kind, time.monotonic() - t0)
            if s.sharing:
                self._backends[key] = backend
            return backend

    def ensure_model(
        self, name: str, *, cache_dir: Path | None = None, mirror: str | None = None, progress: Any = None
    ) -> tuple[Manifest, Path]:
        """``edge.registry.ensure_model`` serialised, and checked (sha256) once per pool."""
        from edge.registry import ensure_model

        key = (name, str(cache_dir), str(mirror))
        with self._lock:
            hit = self._files.get(key)
            if hit is not None and self.settings.sharing and hit[1].is_dir():
                return hit
            manifest, folder = ensure_model(name, cache_dir=cache_dir, mirror=mirror, progress=progress)
            self._files[key] = (manifest, folder)
            return manifest, folder

    def loaded_count(self) -> int:
        """How many distinct backends are loaded (for tests and metrics)."""
        return len(self._backends)

    def clear(self) -> None:
        """Forget every shared backend and registry check (tests)."""
        with self._lock:
            self._backends.clear()
            self._files.clear()


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


_DEFAULT: ModelPool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pool() -> ModelPool:
    """The pool of library callers that pass none (made on first use, ``EDGE_SHARED_MODELS`` read
    then). ``edge run``, ``edge replay`` and ``edge demo`` never use it: they own their pools."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = ModelPool(PoolSettings(sharing=sharing_enabled()))
        return _DEFAULT
