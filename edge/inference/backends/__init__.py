"""Backends behind one interface. The rest of the appliance calls ``load_backend`` only.

Each backend module is imported lazily, so a Raspberry Pi with only the ``tflite`` extra
never imports OpenVINO.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from edge.errors import ModelError
from edge.inference.backends.base import Backend, TensorSpec

# key -> module exposing ``open_backend(path, threads, device) -> Backend``
BACKENDS = {
    "litert": "edge.inference.backends.litert",
    "openvino": "edge.inference.backends.openvino",
    "onnx": "edge.inference.backends.onnx",
}

# the pip extra that provides each backend, for the error message
_EXTRA = {"litert": "tflite", "openvino": "openvino", "onnx": "onnx"}


# the Python package each backend needs
_PACKAGES = {"litert": ("ai_edge_litert", "tflite_runtime"), "openvino": ("openvino",), "onnx": ("onnxruntime",)}


def installed(kind: str) -> bool:
    """True when the runtime behind backend ``kind`` can be imported."""
    return any(importlib.util.find_spec(p) is not None for p in _PACKAGES.get(kind, ()))


def pick_backend(supported: list[str], requested: str | None = None) -> str:
    """``requested`` if given, else the first of a model's ``supported`` backends (best first)
    that is installed, so a Pi with only the ``onnx`` extra still runs an OpenVINO-first model."""
    if requested:
        return requested
    for kind in supported:
        if installed(kind):
            return kind
    return supported[0]  # load_backend then names the extra to install


def load_backend(
    kind: str, path: Path, threads: int = 2, device: str = "CPU", precision: str = "auto", streams: int = 1
) -> Backend:
    """Open the model file at ``path`` with backend ``kind`` (litert, openvino or onnx).

    ``precision`` (OpenVINO): ``auto`` lets the device pick its fastest (bf16 on CPUs that have
    it, about 2x faster here); ``f32`` gives results that match the other backends exactly.
    ``streams`` (OpenVINO): requests that may run in parallel (a model shared by cameras).
    Raises ModelError with the file name for a missing, corrupt or unsupported model.
    """
    if kind not in BACKENDS:
        raise ModelError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
    if not Path(path).is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        module = importlib.import_module(BACKENDS[kind])
    except ImportError as err:
        raise ModelError(
            f"backend {kind!r} is not installed ({err.name}); pip install 'edge-appliance[{_EXTRA[kind]}]'"
        ) from None
    try:
        extra = {"streams": streams} if kind == "openvino" and streams > 1 else {}
        backend: Backend = module.open_backend(Path(path), threads=threads, device=device, precision=precision, **extra)
    except ModelError:
        raise
    except Exception as err:  # runtimes raise their own types for corrupt files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"cannot load model {path} with {kind}: {first[:300]}") from None
    return backend


__all__ = ["BACKENDS", "Backend", "TensorSpec", "installed", "load_backend", "pick_backend"]
