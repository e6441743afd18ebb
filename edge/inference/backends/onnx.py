"""ONNX Runtime backend (CPU execution provider)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.inference.backends.base import Backend, TensorSpec

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape)
    return TensorSpec(arg.name, shape, np.dtype(_DTYPES.get(arg.type, np.float32)))


class OnnxBackend(Backend):
    """Runs an .onnx file with a fixed thread count."""

    key = "onnx"

    def __init__(self, path: Path, threads: int = 2) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # idle ORT workers busy-wait by default; with several models on 2 cores they starve each other
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.inputs = [_spec(a) for a in self._session.get_inputs()]
        self.outputs = [_spec(a) for a in self._session.get_outputs()]

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._session.run(None, feeds)
        return {spec.name: np.asarray(v) for spec, v in zip(self.outputs, values)}

    def infer_threadsafe(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``InferenceSession.run`` is thread-safe: one session serves every camera."""
        return self.infer(feeds)

    def metadata(self) -> dict[str, str]:
        return dict(self._session.get_modelmeta().custom_metadata_map)


def open_backend(path: Path, threads: int = 2, device: str = "CPU", precision: str = "auto") -> Backend:
    """Plugin entry point."""
    return OnnxBackend(path, threads)
