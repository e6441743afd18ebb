"""ONNX Runtime backend. Execution providers are given to each backend (``runtime.providers``,
through the model pool's settings); one the installed onnxruntime lacks (or that fails to start) is
skipped with one warning and the session falls back to the next, finally ``CPUExecutionProvider``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.inference.backends.base import Backend, OnnxProviders, TensorSpec

log = logging.getLogger("edge.inference.onnx")

_CPU = "CPUExecutionProvider"
_warned: set[tuple[str, ...]] = set()  # warnings already logged: once per process, not per model


def _warn_once(missing: list[str], why: str, using: list[str]) -> None:
    key = (why, *missing)
    if key not in _warned:
        _warned.add(key)
        log.warning(
            "ONNX Runtime execution provider(s) %s %s; falling back to %s",
            ", ".join(missing),
            why,
            ", ".join(using),
        )


def select_providers(requested: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The requested providers this onnxruntime has, in order, ending with CPU (warns once)."""
    wanted = list(requested or [_CPU])
    available = set(ort.get_available_providers())
    chosen = [p for p in wanted if p in available]
    if _CPU not in chosen:
        chosen.append(_CPU)
    missing = [p for p in wanted if p not in available]
    if missing:
        has = ", ".join(sorted(available))
        _warn_once(missing, f"not available in this onnxruntime {ort.__version__} (it has {has})", chosen)
    return chosen


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

    def __init__(self, path: Path, threads: int = 2, providers: OnnxProviders | None = None) -> None:
        """``providers``: execution providers and their options (default: CPU only)."""
        providers = providers or OnnxProviders()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # idle ORT workers busy-wait by default; with several models on 2 cores they starve each other
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        chosen = select_providers(providers.names)
        options = [{k: str(v) for k, v in providers.options.get(p, {}).items()} for p in chosen]
        self._session = ort.InferenceSession(str(path), sess_options=opts, providers=chosen, provider_options=options)
        active = self._session.get_providers()  # a listed provider can still fail to start (no GPU, no CUDA libs)
        failed = [p for p in chosen if p not in active]
        if failed:
            _warn_once(failed, "failed to start", active)
        self.providers = active
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


def open_backend(
    path: Path, threads: int = 2, device: str = "CPU", precision: str = "auto", providers: OnnxProviders | None = None
) -> Backend:
    """Plugin entry point."""
    return OnnxBackend(path, threads, providers)
