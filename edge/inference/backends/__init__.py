"""Backends behind one interface. The rest of the appliance calls ``load_backend`` only.

Each backend module is imported lazily, so a Raspberry Pi with only the ``tflite`` extra
never imports OpenVINO.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ModelError
from edge.inference.backends.base import Backend, OnnxProviders, TensorSpec


@dataclass(frozen=True)
class BackendEntry:
    """One backend: its module (exposing ``open_backend(path, threads, device, precision, **extra)
    -> Backend``, imported only when used), the pip extra that installs it (for the error message)
    and the Python packages any one of which provides its runtime."""

    module: str
    extra: str
    packages: tuple[str, ...]


# The one place a backend is registered: key (manifest ``backends:``, ``--backend``) -> entry.
BACKENDS: dict[str, BackendEntry] = {
    "litert": BackendEntry("edge.inference.backends.litert", "tflite", ("ai_edge_litert", "tflite_runtime")),
    "openvino": BackendEntry("edge.inference.backends.openvino", "openvino", ("openvino",)),
    "onnx": BackendEntry("edge.inference.backends.onnx", "onnx", ("onnxruntime",)),
}


def installed(kind: str) -> bool:
    """True when the runtime behind backend ``kind`` can be imported."""
    entry = BACKENDS.get(kind)
    return entry is not None and any(importlib.util.find_spec(p) is not None for p in entry.packages)


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
    kind: str,
    path: Path,
    threads: int = 2,
    device: str = "CPU",
    precision: str = "auto",
    streams: int = 1,
    *,
    onnx: OnnxProviders | None = None,
) -> Backend:
    """Open the model file at ``path`` with backend ``kind`` (litert, openvino or onnx).

    ``precision`` (OpenVINO): ``auto`` lets the device pick its fastest (bf16 on CPUs that have
    it, about 2x faster here); ``f32`` gives results that match the other backends exactly.
    ``streams`` (OpenVINO): requests that may run in parallel (a model shared by cameras).
    ``onnx`` (ONNX Runtime): execution providers (default: CPU).
    Raises ModelError with the file name for a missing, corrupt or unsupported model.
    """
    entry = BACKENDS.get(kind)
    if entry is None:
        raise ModelError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
    if not Path(path).is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        module = importlib.import_module(entry.module)
    except ImportError as err:
        raise ModelError(
            f"backend {kind!r} is not installed ({err.name}); pip install 'edge-appliance[{entry.extra}]'"
        ) from None
    try:
        extra: dict[str, object] = {"streams": streams} if kind == "openvino" and streams > 1 else {}
        if kind == "onnx" and onnx is not None:
            extra["providers"] = onnx
        backend: Backend = module.open_backend(Path(path), threads=threads, device=device, precision=precision, **extra)
    except ModelError:
        raise
    except Exception as err:  # runtimes raise their own types for corrupt files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"cannot load model {path} with {kind}: {first[:300]}") from None
    return backend


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendEntry",
    "OnnxProviders",
    "TensorSpec",
    "installed",
    "load_backend",
    "pick_backend",
]
