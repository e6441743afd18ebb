"""The model to convert: a registry name, or a file (ONNX, OpenVINO IR, TFLite) plus its manifest,
or a PyTorch model (TorchScript ``.pt``, exported program ``.pt2``, ``package.module:factory``) plus
``--manifest``/``--like``: that one is first exported to an FP32 OpenVINO IR (the verification
reference), and kept as a module for the TFLite route.

A file is matched to a manifest by sha256 (any registry model's file), or given one with
``--manifest FILE.yaml`` / ``--like NAME`` (borrow input spec, head and labels of a registry model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from convert import torch_export
from convert.errors import ConvertError
from edge.errors import ModelError
from edge.inference.backends import Backend, load_backend
from edge.registry import Manifest, ensure_model, find_manifest, list_manifests
from edge.registry.pull import sha256_of

FORMATS = {".onnx": "onnx", ".xml": "openvino", ".tflite": "tflite"}


@dataclass
class Source:
    """A source model: its manifest (input spec, head, labels), folder and entry file."""

    manifest: Manifest
    folder: Path
    path: Path
    module: Any = None  # the nn.Module of a PyTorch source (path is then its FP32 IR)
    export_check: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """NCHW or NHWC shape with batch 1, from the manifest's input spec."""
        assert self.manifest.input is not None
        w, h = self.manifest.input.size
        return (1, 3, h, w) if self.manifest.input.layout == "NCHW" else (1, h, w, 3)

    @property
    def format(self) -> str:
        return FORMATS[self.path.suffix.lower()]


def _manifest_for_file(path: Path) -> Manifest | None:
    digest = sha256_of(path)
    for m in list_manifests():
        for f in m.files:
            if f.sha256 == digest:
                return m
    return None


def _load_manifest_file(path: Path) -> Manifest:
    try:
        return Manifest.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as err:
        raise ConvertError(f"cannot read manifest {path}: {str(err).splitlines()[0]}") from None


def resolve(
    src: str,
    *,
    manifest: str | None = None,
    like: str | None = None,
    entry: str | None = None,
    workdir: Path = Path("out/converted/_sources"),
) -> Source:
    """Find the model and its manifest; ConvertError (exit 2) with one clear line otherwise."""
    p = Path(src)
    if torch_export.is_torch_source(src):
        return _torch_source(src, _given_manifest(src, manifest, like), workdir)
    if not p.exists():
        try:
            m, folder = ensure_model(src)
        except ModelError as err:
            raise ConvertError(f"{src} is neither a file nor a registry model ({err})") from None
        path = folder / (entry or m.entry)
        if not path.is_file():
            raise ConvertError(f"model {src} has no file {entry or m.entry}")
        return _checked(Source(m, folder, path))
    if p.is_dir() or p.suffix.lower() not in FORMATS:
        raise ConvertError(f"{src}: not a model file (expected .onnx, .xml (OpenVINO IR) or .tflite)")
    given = _given_manifest(src, manifest, like, required=False)
    if given is not None:
        m = given
    else:
        found = _manifest_for_file(p)
        if found is None:
            raise ConvertError(
                f"{src} has no manifest: pass --manifest FILE.yaml or --like NAME (a registry model with the same "
                "input and outputs) so the toolchain knows how to preprocess frames and decode outputs"
            )
        m = found
    return _checked(Source(m, p.parent, p))


def _given_manifest(src: str, manifest: str | None, like: str | None, required: bool = True) -> Manifest | None:
    if manifest:
        return _load_manifest_file(Path(manifest))
    if like:
        try:
            return find_manifest(like)
        except ModelError as err:
            raise ConvertError(str(err)) from None
    if required:
        raise ConvertError(
            f"{src} has no manifest: pass --manifest FILE.yaml or --like NAME (a registry model with the same "
            "input and outputs) so the toolchain knows the input shape, preprocessing and output decoding"
        )
    return None


def _torch_source(src: str, m: Manifest | None, workdir: Path) -> Source:
    """Load the PyTorch model, export it to an FP32 IR (the reference) and check the export."""
    import numpy as np

    assert m is not None
    if m.input is None:
        raise ConvertError(f"manifest of {m.name} has no input spec: cannot trace the PyTorch model")
    module = torch_export.load_module(src)
    stem = src.replace(":", "-").replace("/", "_").replace(".", "_")[-80:]
    shape = Source(m, workdir, workdir).input_shape
    xml = torch_export.to_openvino(module, shape, workdir / f"{stem}-fp32.xml")
    x = torch_export.example_input(shape).numpy()
    want = torch_export.run(module, x)
    ir = load_backend("openvino", xml, precision="f32")
    got = list(ir.infer({ir.inputs[0].name: x}).values())
    diff = max(float(np.abs(a - b.reshape(a.shape)).max()) for a, b in zip(want, got))
    source = Source(m, workdir, xml, module=module, export_check={"torch_vs_openvino_ir_max_abs": diff})
    return _checked(source)


def open_source(source: Source, precision: str = "f32") -> Backend:
    """The source model on OpenVINO when it can read it (all formats but TFLite with custom ops), at
    ``precision``, else on its manifest's first backend."""
    kind = "litert" if source.format == "tflite" else "openvino"
    try:
        return load_backend(kind, source.path, precision=precision)
    except ModelError as err:
        raise ConvertError(str(err)) from None


def _checked(source: Source) -> Source:
    """The manifest must say how to feed the model, and agree with the model's input shape."""
    spec = source.manifest.input
    if spec is None:
        raise ConvertError(f"manifest of {source.manifest.name} has no input spec: cannot build calibration data")
    try:
        kind = {"tflite": "litert", "onnx": "onnx"}.get(source.format, "openvino")
        backend = load_backend(kind, source.path)
    except ModelError as err:
        raise ConvertError(str(err)) from None
    names = [t.name for t in backend.inputs]
    t = next((t for t in backend.inputs if t.name == spec.name), backend.inputs[0])
    w, h = spec.size
    want = (1, 3, h, w) if spec.layout == "NCHW" else (1, h, w, 3)
    if len(t.shape) != 4 or any(a not in (b, -1) for a, b in zip(t.shape, want)):
        raise ConvertError(
            f"{source.path.name}: input {t.name} has shape {list(t.shape)} but the manifest of "
            f"{source.manifest.name} says {list(want)} ({spec.layout} {w}x{h}); wrong model or manifest"
        )
    if len(names) > 1:
        raise ConvertError(f"{source.path.name}: models with several inputs ({', '.join(names)}) are not supported")
    return source
