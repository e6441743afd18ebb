"""The one-method backend interface: named numpy tensors in, named numpy tensors out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape, dtype and (for quantized tensors) ``real = scale * (q - zero_point)``."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        """True for integer tensors with a quantization scale."""
        return self.scale != 0.0 and np.issubdtype(self.dtype, np.integer)


@dataclass(frozen=True)
class OnnxProviders:
    """ONNX Runtime execution providers, best first, and their options (``runtime.providers``,
    ``runtime.provider_options``). One the installed onnxruntime lacks is skipped with a warning."""

    names: tuple[str, ...] = ("CPUExecutionProvider",)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


class Backend(ABC):
    """A loaded model. ``infer`` takes inputs by name and returns float32 outputs by name
    (quantized outputs are dequantized here, so heads never see integers unless they are
    class indices)."""

    key: str = ""
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @abstractmethod
    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model once."""

    def metadata(self) -> dict[str, str]:
        """Model metadata key/values where the format has them (ONNX)."""
        return {}
