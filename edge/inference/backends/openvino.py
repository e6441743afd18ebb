"""OpenVINO backend for IR (.xml + .bin) and ONNX files."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np
import openvino as ov

from edge.inference.backends.base import Backend, TensorSpec

_core: ov.Core | None = None
_POOL_LOCK = threading.Lock()
_MAX_REQUESTS = 4  # concurrent inferences per compiled model; more callers wait for a free one


def _get_core() -> ov.Core:
    global _core
    if _core is None:
        _core = ov.Core()
    return _core


def _spec(port: ov.Output) -> TensorSpec:
    shape = tuple(d.get_length() if d.is_static else -1 for d in port.get_partial_shape())
    return TensorSpec(port.get_any_name(), shape, np.dtype(port.get_element_type().to_dtype()))


class OpenVINOBackend(Backend):
    """Compiles the model for ``device`` with ``precision`` (``auto``: the device's fastest)."""

    key = "openvino"

    def __init__(
        self, path: Path, threads: int = 2, device: str = "CPU", precision: str = "auto", streams: int = 1
    ) -> None:
        """``streams`` > 1 (a model shared by cameras processed in parallel): that many
        requests run at the same time, each with ``threads`` threads (one stream runs its
        requests one after the other)."""
        core = _get_core()
        model = core.read_model(str(path))
        config: dict[str, object] = {}
        if device.upper().startswith("CPU"):
            config = {"INFERENCE_NUM_THREADS": threads * max(1, streams)}
            if streams > 1:
                config["NUM_STREAMS"] = streams
        if precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = precision
        self._compiled = core.compile_model(model, device, config)
        self._request = self._compiled.create_infer_request()
        self.inputs = [_spec(p) for p in self._compiled.inputs]
        self.outputs = [_spec(p) for p in self._compiled.outputs]
        # requests for concurrent callers (shared model): created on demand, at most _MAX_REQUESTS
        self._pool: queue.LifoQueue[ov.InferRequest] = queue.LifoQueue()
        self._pool.put(self._request)
        self._made = 1
        self._max_requests = max(_MAX_REQUESTS, streams)

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self._request.infer({name: np.ascontiguousarray(v) for name, v in feeds.items()})
        return {spec.name: np.asarray(result[port]) for spec, port in zip(self.outputs, self._compiled.outputs)}

    def infer_threadsafe(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``infer`` for many threads: one InferRequest each from a pool over the one compiled
        model; outputs are copied (a request reuses its output memory)."""
        try:
            request = self._pool.get_nowait()
        except queue.Empty:
            request = self._new_request()
        try:
            result = request.infer({name: np.ascontiguousarray(v) for name, v in feeds.items()})
            return {spec.name: np.array(result[port]) for spec, port in zip(self.outputs, self._compiled.outputs)}
        finally:
            self._pool.put(request)

    def _new_request(self) -> ov.InferRequest:
        with _POOL_LOCK:
            if self._made < self._max_requests:
                self._made += 1
                return self._compiled.create_infer_request()
        return self._pool.get()


def open_backend(
    path: Path, threads: int = 2, device: str = "CPU", precision: str = "auto", streams: int = 1
) -> Backend:
    """Plugin entry point."""
    return OpenVINOBackend(path, threads, device, precision, streams)
