"""LiteRT (TFLite) backend: ``ai_edge_litert``, falling back to the older ``tflite_runtime``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ModelError
from edge.inference.backends.base import Backend, TensorSpec

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # Raspberry Pi OS images that still ship tflite_runtime
    from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found,no-redef]


def _spec(d: dict[str, Any]) -> TensorSpec:
    scale, zero = d.get("quantization", (0.0, 0))
    return TensorSpec(d["name"], tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]), float(scale), int(zero))


class LiteRTBackend(Backend):
    """Runs a .tflite file on the CPU with XNNPACK."""

    key = "litert"

    def __init__(self, path: Path, threads: int = 2) -> None:
        data = path.read_bytes()
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise ModelError(f"{path} is not a TFLite flatbuffer (corrupt or truncated?)")
        self._data, self._threads = data, threads
        self._interp = Interpreter(model_content=data, num_threads=threads)
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        self.inputs = [_spec(d) for d in self._in]
        self.outputs = [_spec(d) for d in self._out]

    def clone(self) -> LiteRTBackend:
        """Another interpreter over the same model bytes: an Interpreter serves one thread at
        a time, so a shared LiteRT model keeps one per concurrent caller."""
        twin = object.__new__(LiteRTBackend)
        twin._data, twin._threads = self._data, self._threads
        twin._interp = Interpreter(model_content=self._data, num_threads=self._threads)
        twin._interp.allocate_tensors()
        twin._in, twin._out = twin._interp.get_input_details(), twin._interp.get_output_details()
        twin.inputs, twin.outputs = self.inputs, self.outputs
        return twin

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for d, spec in zip(self._in, self.inputs):
            self._interp.set_tensor(d["index"], feeds[spec.name])
        self._interp.invoke()
        out = {}
        for d, spec in zip(self._out, self.outputs):
            t = self._interp.get_tensor(d["index"])
            out[spec.name] = (t.astype(np.float32) - spec.zero_point) * spec.scale if spec.quantized else t
        return out


def open_backend(path: Path, threads: int = 2, device: str = "CPU", precision: str = "auto") -> Backend:
    """Plugin entry point."""
    return LiteRTBackend(path, threads)
