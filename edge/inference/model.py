"""Loaded models by task: ``Detector`` (frame -> Detections), ``Classifier`` (image -> top-k),
``AttributeClassifier`` (crop -> {attribute: (value, score)}). Built from a registry manifest."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from edge.errors import ModelError
from edge.inference.backends import Backend, TensorSpec, pick_backend
from edge.inference.heads import HeadContext, attributes, classifier, get_detection_head
from edge.inference.pool import ModelPool, default_pool
from edge.inference.preprocess import Letterbox, prepare
from edge.registry import Manifest
from edge.types import Detections

if TYPE_CHECKING:
    from typing_extensions import Unpack


@dataclass
class LoadedModel:
    """A manifest, its backend and labels. ``last_seconds`` is the latest inference time.

    Recurrent models (e.g. LSTM-SSD) declare ``head.state: {input_name: output_name}`` in the
    manifest: each listed output is fed back into its input on the next call. ``state`` holds
    the tensors the next call will feed; it belongs to this instance, i.e. to one camera, so
    call ``reset()`` when that camera's stream starts over.
    """

    manifest: Manifest
    backend: Backend
    labels: list[str]
    last_seconds: float = 0.0
    _input_name: str = field(default="", init=False)
    state: dict[str, np.ndarray] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        spec = self.manifest.input
        if spec is None:
            raise ModelError(f"model {self.manifest.name} has no input spec in its manifest")
        names = [t.name for t in self.backend.inputs]
        self._input_name = spec.name if spec.name in names else names[0]
        self._tensor = next(t for t in self.backend.inputs if t.name == self._input_name)
        self._specs = {t.name: t for t in self.backend.inputs}
        self._state_map = self._check_state(dict(self.manifest.head.state))
        self.reset()

    def _check_state(self, state_map: dict[str, str]) -> dict[str, str]:
        """Validate the manifest's state map against the model's tensors; every input must be fed."""
        ins = {t.name: t for t in self.backend.inputs}
        outs = {t.name: t for t in self.backend.outputs}
        for i_name, o_name in state_map.items():
            if i_name == self._input_name or i_name not in ins or o_name not in outs:
                raise ModelError(
                    f"model {self.name}: state {i_name!r} -> {o_name!r} names no state input/output of the model"
                )
            if ins[i_name].shape != outs[o_name].shape:
                raise ModelError(
                    f"model {self.name}: state {i_name!r} {ins[i_name].shape} != {o_name!r} {outs[o_name].shape}"
                )
        unfed = set(ins) - {self._input_name} - set(state_map)
        if unfed:
            raise ModelError(f"model {self.name}: inputs {sorted(unfed)} are not fed; map them in head.state")
        return state_map

    def reset(self) -> None:
        """Start from a zero recurrent state (a new stream); no-op for stateless models."""
        specs = self._specs
        # real 0.0 is the zero point of a quantized tensor
        self.state = {n: np.full(specs[n].shape, specs[n].zero_point, specs[n].dtype) for n in self._state_map}

    @property
    def name(self) -> str:
        """Model name from the manifest."""
        return self.manifest.name

    @property
    def backend_key(self) -> str:
        """litert, openvino or onnx."""
        return self.backend.key

    def run(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], Letterbox]:
        """Preprocess one BGR image and run the backend; returns outputs and the letterbox."""
        assert self.manifest.input is not None
        tensor, lb = prepare(image, self.manifest.input, self._tensor)
        t0 = time.perf_counter()
        out = self.backend.infer({self._input_name: tensor, **self.state})
        self.last_seconds = time.perf_counter() - t0
        for i_name, o_name in self._state_map.items():  # heads see only the non-state outputs
            self.state[i_name] = _to_input(out.pop(o_name), self._specs[i_name])
        return out, lb


def _to_input(value: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """A (dequantized float) output as the input tensor ``spec`` expects: the backend hands out
    real values, a quantized state input takes integers on its own scale."""
    if not spec.quantized:
        return np.ascontiguousarray(value, dtype=spec.dtype).reshape(spec.shape)
    info = np.iinfo(spec.dtype)
    q = np.rint(value / spec.scale + spec.zero_point)
    return np.clip(q, info.min, info.max).astype(spec.dtype).reshape(spec.shape)


class Detector(LoadedModel):
    """Object detector: BGR frame -> Detections with normalised boxes."""

    score_threshold: float = 0.3

    def detect(self, image: np.ndarray) -> Detections:
        """Detect objects in one BGR image."""
        outputs, lb = self.run(image)
        m = self.manifest
        ctx = HeadContext(lb, self.labels, m.label_offset, self.score_threshold, m.head)
        return get_detection_head(m.head.type)(outputs, ctx)


class Classifier(LoadedModel):
    """Whole-image classifier: BGR image -> [(label, score)] best first."""

    def classify(self, image: np.ndarray) -> list[tuple[str, float]]:
        """Top-k labels for one BGR image."""
        outputs, _ = self.run(image)
        return classifier.decode(outputs, self.manifest.head, self.labels)


class AttributeClassifier(LoadedModel):
    """Crop classifier with several outputs, e.g. {"type": ("car", 0.9), "color": ("white", 0.8)}."""

    def classify(self, image: np.ndarray) -> dict[str, tuple[str, float]]:
        """Attributes of one BGR crop."""
        outputs, _ = self.run(image)
        return attributes.decode(outputs, self.manifest.head, self.name)

    def probabilities(self, image: np.ndarray) -> dict[str, dict[str, float]]:
        """Every value's score per attribute of one BGR crop, e.g. {"color": {"white": 0.7, "gray": 0.3, ...}}."""
        outputs, _ = self.run(image)
        out: dict[str, dict[str, float]] = {}
        for name, values in attributes.value_names(self.manifest.head, self.name).items():
            scores = outputs[name].reshape(-1)
            out[name] = {str(v): float(p) for v, p in zip(values, scores)}
        return out


_KINDS: dict[str, type[LoadedModel]] = {"detect": Detector, "classify": Classifier, "attributes": AttributeClassifier}


@dataclass(frozen=True)
class OpenedModel:
    """A pulled model and its entry file loaded in a pool: what every loader starts from (tasks
    here, plate readers, privacy models). ``kind`` is the backend it runs on."""

    manifest: Manifest
    folder: Path
    kind: str
    backend: Backend
    pool: ModelPool
    threads: int = 2
    device: str = "CPU"
    precision: str = "auto"

    def file_backend(self, entry: str, kind: str | None = None, threads: int | None = None) -> Backend:
        """Another file of this model (e.g. a text detector shipped with a recogniser), or its
        entry with another backend ``kind`` (then on CPU), from the same pool."""
        if kind is not None and kind != self.kind:
            return self.pool.backend(kind, self.folder / entry, threads or self.threads, "CPU")
        return self.pool.backend(self.kind, self.folder / entry, threads or self.threads, self.device, self.precision)

    def labels(self) -> list[str]:
        """The model's labels (its manifest's list or labels file)."""
        return self.manifest.read_labels(self.folder)


class ModelOptions(TypedDict, total=False):
    """How models are fetched and run (``AppConfig.model_options()``, plus a ``progress`` callback
    for pulls and the ``pool`` they load into, default :func:`default_pool`). Unset: 2 threads,
    CPU, the device's fastest precision, the default cache and mirror."""

    threads: int
    device: str
    precision: str
    cache_dir: Path | None
    mirror: str | None
    progress: Any
    pool: ModelPool | None


def open_model(
    name: str,
    *,
    backend: str | None = None,
    check: Callable[[Manifest], object] | None = None,
    **options: Unpack[ModelOptions],
) -> OpenedModel:
    """Pull model ``name`` if needed and load its entry file with ``backend`` (default: the
    manifest's first installed one) in the options' pool: the backend is shared with every other
    caller naming the same file and options. ``check`` may refuse the manifest (raise ModelError)
    before anything is loaded."""
    pool = options.get("pool") or default_pool()
    threads, device = options.get("threads", 2), options.get("device", "CPU")
    precision = options.get("precision", "auto")
    manifest, folder = pool.ensure_model(
        name, cache_dir=options.get("cache_dir"), mirror=options.get("mirror"), progress=options.get("progress")
    )
    kind = pick_backend(list(manifest.backends), backend)
    if kind not in manifest.backends:
        raise ModelError(f"model {name} cannot run on backend {kind!r}; it supports {', '.join(manifest.backends)}")
    if check is not None:
        check(manifest)
    shared = pool.backend(kind, folder / manifest.entry, threads, device, precision)
    return OpenedModel(manifest, folder, kind, shared, pool, threads, device, precision)


def _task_class(manifest: Manifest) -> type[LoadedModel]:
    """The class for ``manifest``'s task; ModelError for a task that is not a detector or classifier."""
    cls = _KINDS.get(manifest.task)
    if cls is None:
        raise ModelError(f"model {manifest.name} has task {manifest.task!r}, which is not a detector or classifier")
    return cls


def load_model(name: str, *, backend: str | None = None, **options: Unpack[ModelOptions]) -> LoadedModel:
    """Pull model ``name`` if needed and load it with ``backend`` (default: the manifest's first).

    The backend is shared with every other caller of the options' pool naming the same file and
    options; the returned object (and its ``state``) is the caller's own."""
    # one backend per model file and options for the pool; this instance (one camera) keeps its
    # own recurrent state, threshold and timing over it (see edge.inference.pool)
    opened = open_model(name, backend=backend, check=_task_class, **options)
    return _task_class(opened.manifest)(opened.manifest, opened.backend, opened.labels())


def preload(names: list[str], options: dict[str, Any], pool: ModelPool | None = None) -> list[LoadedModel]:
    """Load every model in ``names`` once, one at a time, in ``pool`` (default: :func:`default_pool`;
    ``options``: ``load_model``'s). Returns the loaded models: hold them while they must stay
    loaded (shared models are freed when nothing uses them). Raises ModelError like ``load_model``."""
    return [load_model(name, **{**options, "pool": pool or options.get("pool")}) for name in dict.fromkeys(names)]
