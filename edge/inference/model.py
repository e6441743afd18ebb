"""Loaded models by task: ``Detector`` (frame -> Detections), ``Classifier`` (image -> top-k),
``AttributeClassifier`` (crop -> {attribute: (value, score)}). Built from a registry manifest."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ModelError
from edge.inference.backends import Backend, load_backend, pick_backend
from edge.inference.heads import get_head
from edge.inference.preprocess import prepare
from edge.registry import Manifest, ensure_model
from edge.types import Detections


@dataclass
class LoadedModel:
    """A manifest, its backend and labels. ``last_seconds`` is the latest inference time."""

    manifest: Manifest
    backend: Backend
    labels: list[str]
    last_seconds: float = 0.0
    _input_name: str = field(default="", init=False)

    def __post_init__(self) -> None:
        spec = self.manifest.input
        if spec is None:
            raise ModelError(f"model {self.manifest.name} has no input spec in its manifest")
        names = [t.name for t in self.backend.inputs]
        self._input_name = spec.name if spec.name in names else names[0]
        self._tensor = next(t for t in self.backend.inputs if t.name == self._input_name)

    @property
    def name(self) -> str:
        """Model name from the manifest."""
        return self.manifest.name

    @property
    def backend_key(self) -> str:
        """litert, openvino or onnx."""
        return self.backend.key

    def run(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], Any]:
        """Preprocess one BGR image and run the backend; returns outputs and the letterbox."""
        assert self.manifest.input is not None
        tensor, lb = prepare(image, self.manifest.input, self._tensor)
        t0 = time.perf_counter()
        out = self.backend.infer({self._input_name: tensor})
        self.last_seconds = time.perf_counter() - t0
        return out, lb


class Detector(LoadedModel):
    """Object detector: BGR frame -> Detections with normalised boxes."""

    score_threshold: float = 0.3

    def detect(self, image: np.ndarray) -> Detections:
        """Detect objects in one BGR image."""
        outputs, lb = self.run(image)
        head = self.manifest.head
        decode = get_head(str(head.get("type")))
        result: Detections = decode(outputs, lb, head, self.labels, self.manifest.label_offset, self.score_threshold)
        return result


class Classifier(LoadedModel):
    """Whole-image classifier: BGR image -> [(label, score)] best first."""

    def classify(self, image: np.ndarray) -> list[tuple[str, float]]:
        """Top-k labels for one BGR image."""
        outputs, _ = self.run(image)
        result: list[tuple[str, float]] = get_head("classifier")(outputs, self.manifest.head, self.labels)
        return result


class AttributeClassifier(LoadedModel):
    """Crop classifier with several outputs, e.g. {"type": ("car", 0.9), "color": ("white", 0.8)}."""

    def classify(self, image: np.ndarray) -> dict[str, tuple[str, float]]:
        """Attributes of one BGR crop."""
        outputs, _ = self.run(image)
        result: dict[str, tuple[str, float]] = get_head("attributes")(outputs, self.manifest.head, self.labels)
        return result


_KINDS: dict[str, type[LoadedModel]] = {"detect": Detector, "classify": Classifier, "attributes": AttributeClassifier}


def load_model(
    name: str,
    *,
    backend: str | None = None,
    threads: int = 2,
    device: str = "CPU",
    precision: str = "auto",
    cache_dir: Path | None = None,
    mirror: str | None = None,
    progress: Any = None,
) -> LoadedModel:
    """Pull model ``name`` if needed and load it with ``backend`` (default: the manifest's first)."""
    manifest, folder = ensure_model(name, cache_dir=cache_dir, mirror=mirror, progress=progress)
    kind = pick_backend(list(manifest.backends), backend)
    if kind not in manifest.backends:
        raise ModelError(f"model {name} cannot run on backend {kind!r}; it supports {', '.join(manifest.backends)}")
    cls = _KINDS.get(manifest.task)
    if cls is None:
        raise ModelError(f"model {name} has task {manifest.task!r}, which is not a detector or classifier")
    return cls(
        manifest, load_backend(kind, folder / manifest.entry, threads, device, precision), manifest.read_labels(folder)
    )
