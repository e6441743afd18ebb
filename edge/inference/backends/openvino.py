"""OpenVINO backend for IR (.xml + .bin) and ONNX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov

from edge.inference.backends.base import Backend, TensorSpec

_core: ov.Core | None = None


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

    def __init__(self, path: Path, threads: int = 2, device: str = "CPU", precision: str = "auto") -> None:
        core = _get_core()
        model = core.read_model(str(path))
        config: dict[str, object] = {}
        if device.upper().startswith("CPU"):
            config = {"INFERENCE_NUM_THREADS": threads}
        if precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = precision
        self._compiled = core.compile_model(model, device, config)
        self._request = self._compiled.create_infer_request()
        self.inputs = [_spec(p) for p in self._compiled.inputs]
        self.outputs = [_spec(p) for p in self._compiled.outputs]

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self._request.infer({name: np.ascontiguousarray(v) for name, v in feeds.items()})
        return {spec.name: np.asarray(result[port]) for spec, port in zip(self.outputs, self._compiled.outputs)}


def open_backend(path: Path, threads: int = 2, device: str = "CPU", precision: str = "auto") -> Backend:
    """Plugin entry point."""
    return OpenVINOBackend(path, threads, device, precision)
