"""PyTorch in, OpenVINO IR and TFLite out; and ONNX -> TFLite through PyTorch (no TensorFlow).

Sources: a TorchScript file (``.pt``/``.pth``, ``torch.jit.save``), an exported program (``.pt2``,
``torch.export.save``) or an ``nn.Module`` built by a factory named ``package.module:function``
(called without arguments). The example input comes from the manifest's input spec.

* -> OpenVINO IR: ``openvino.convert_model`` takes the module (or exported program) directly.
* -> TFLite FP32: ``litert_torch.convert`` (torch.export + the LiteRT converter); INT8 is then
  ai-edge-quantizer on that FP32 file (``convert.tflite``), calibrated like every other route.
* ONNX -> TFLite: ``onnx2torch`` turns the ONNX graph into an ``nn.Module`` first. Its modules read
  some constant inputs (Slice starts/ends, Resize scales, Reshape shapes) as Python values, which
  ``torch.export`` cannot trace; :func:`freeze_constants` bakes those constants into the modules.

Needs the ``[torch]`` extra (torch CPU wheel, litert-torch, onnx2torch).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import types
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

import numpy as np

from convert.errors import ConvertError

TORCH_SUFFIXES = {".pt", ".pth", ".pt2"}
_FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def is_torch_source(src: str) -> bool:
    """A TorchScript / exported-program file, or a ``package.module:factory`` path."""
    return Path(src).suffix.lower() in TORCH_SUFFIXES or (bool(_FACTORY.fullmatch(src)) and not Path(src).exists())


def _need(what: str, *modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConvertError(
            f"{what} needs {', '.join(missing)}: pip install 'edge-appliance[torch]' "
            "(torch CPU wheel, litert-torch, onnx2torch; see docs/convert.md)"
        )


def load_module(src: str) -> Any:
    """The PyTorch model ``src`` in eval mode (an ``nn.Module``; a ``.pt2`` gives its ExportedProgram)."""
    _need(f"PyTorch input {src}", "torch")
    import torch

    if _FACTORY.fullmatch(src) and not Path(src).exists():
        mod_name, _, fn_name = src.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), fn_name)
        except (ImportError, AttributeError) as err:
            raise ConvertError(f"cannot import {src}: {err}") from None
        module = factory()
        if not isinstance(module, torch.nn.Module):
            raise ConvertError(f"{src}() returned {type(module).__name__}, not a torch.nn.Module")
        return module.eval()
    path = Path(src)
    if not path.is_file():
        raise ConvertError(f"{src}: no such file")
    try:
        if path.suffix.lower() == ".pt2":
            return torch.export.load(str(path))  # an ExportedProgram: OpenVINO reads it as is
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError, pickle errors, zip errors...
        kind = "an exported program (torch.export.save)" if path.suffix.lower() == ".pt2" else "TorchScript"
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ConvertError(f"{src} is not {kind}: {first}") from None


def example_input(shape: tuple[int, ...]) -> Any:
    """A fixed pseudo-image tensor of ``shape`` (values 0..255) to trace and check exports with."""
    import torch

    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.uniform(0, 255, shape).astype(np.float32))


def _no_torchvision() -> None:
    """onnx2torch imports torchvision for NMS / RoIAlign converters only. PyPI's torchvision is a
    CUDA build that fails to load beside the CPU torch wheel; a stub lets every other op convert
    (models using those two ops then fail with an AttributeError naming them)."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or RuntimeError from a mismatched build
        tv = types.ModuleType("torchvision")
        ops = types.ModuleType("torchvision.ops")
        tv.__spec__, ops.__spec__ = ModuleSpec("torchvision", None), ModuleSpec("torchvision.ops", None)
        tv.ops = ops  # type: ignore[attr-defined]

        def missing(*_: Any, **__: Any) -> Any:
            raise ConvertError("this ONNX model uses NMS or RoIAlign, which need a working torchvision")

        for fn in ("nms", "roi_align", "box_convert"):
            setattr(ops, fn, missing)
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, ops


def onnx_module(path: Path) -> Any:
    """An ONNX model as an exportable ``nn.Module`` (onnx2torch + :func:`freeze_constants`)."""
    _need("ONNX -> TFLite", "torch", "onnx2torch", "onnx")
    _no_torchvision()
    import onnx
    from onnx2torch import convert

    try:
        return freeze_constants(convert(onnx.load(str(path)))).eval()
    except Exception as err:  # noqa: BLE001 - onnx2torch raises NotImplementedError / KeyError per op
        raise ConvertError(f"onnx2torch cannot convert {path.name}: {str(err).strip()[:200]}") from None


class _Const(np.ndarray):
    """A constant ONNX input as numpy, with the few tensor methods onnx2torch calls on it."""

    def nelement(self) -> int:
        return int(self.size)

    def detach(self) -> _Const:
        return self

    def cpu(self) -> _Const:
        return self

    def numpy(self) -> np.ndarray:
        return np.asarray(self)


def freeze_constants(gm: Any) -> Any:
    """Bake constant (initializer) inputs of onnx2torch's Slice / Resize / Reshape modules into them
    (positional or keyword; an omitted optional input stays None)."""
    import torch

    runtime = object()  # marks an argument that stays a graph input

    class Frozen(torch.nn.Module):
        def __init__(self, inner: Any, consts: list[Any], kw: dict[str, Any]) -> None:
            super().__init__()
            self.inner, self.consts, self.kw = inner, consts, kw

        def forward(self, *xs: Any, **kwargs: Any) -> Any:
            it = iter(xs)
            return self.inner(*[next(it) if c is runtime else c for c in self.consts], **kwargs, **self.kw)

    class StaticReshape(torch.nn.Module):
        def __init__(self, shape: list[int]) -> None:
            super().__init__()
            self.shape = shape

        def forward(self, x: Any) -> Any:
            return torch.reshape(x, [x.shape[i] if d == 0 else d for i, d in enumerate(self.shape)])

    def const(node: Any) -> Any:
        if node is None:
            return None  # an omitted optional input (e.g. Resize's roi)
        if getattr(node, "op", None) != "get_attr":
            return runtime
        t = gm
        for a in node.target.split("."):
            t = getattr(t, a)
        return np.asarray(t.detach().numpy()).view(_Const)

    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        kind = type(gm.get_submodule(node.target)).__name__
        if kind not in ("OnnxSlice", "OnnxResize", "OnnxReshape"):
            continue
        if not all(a is None or hasattr(a, "op") for a in [*node.args, *node.kwargs.values()]):
            continue  # other literals: leave alone
        consts = [runtime, *(const(a) for a in node.args[1:])]
        kw = {k: const(a) for k, a in node.kwargs.items()}
        if not any(isinstance(c, _Const) for c in [*consts, *kw.values()]):
            continue
        if kind == "OnnxReshape":
            if len(consts) < 2 or not isinstance(consts[1], _Const) or node.kwargs:
                continue
            gm.add_submodule(node.target, StaticReshape([int(v) for v in consts[1].tolist()]))
        else:
            baked = {k: c for k, c in kw.items() if c is not runtime}
            gm.add_submodule(node.target, Frozen(gm.get_submodule(node.target), consts, baked))
            node.kwargs = {k: a for k, a in node.kwargs.items() if k not in baked}
        node.args = tuple(a for a, c in zip(node.args, consts) if c is runtime)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def to_openvino(module: Any, shape: tuple[int, ...], out_xml: Path) -> Path:
    """An FP32 OpenVINO IR of the module (``openvino.convert_model`` traces it with an example)."""
    import openvino as ov
    import torch

    try:
        if isinstance(module, torch.export.ExportedProgram):
            model = ov.convert_model(module)
        else:
            model = ov.convert_model(module, example_input=example_input(shape), input=[list(shape)])
    except Exception as err:  # noqa: BLE001 - the frontend's own error types
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ConvertError(f"OpenVINO cannot convert the PyTorch model: {first}") from None
    # traced tensors have no names; the appliance's backends address inputs and outputs by name
    for i, port in enumerate(model.inputs):
        if not port.get_names():
            port.get_tensor().set_names({"input" if i == 0 else f"input{i}"})
    for i, port in enumerate(model.outputs):
        if not port.get_names():
            port.get_tensor().set_names({"output" if i == 0 else f"output{i}"})
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(out_xml), compress_to_fp16=False)
    return out_xml


def to_tflite(module: Any, shape: tuple[int, ...], out: Path) -> Path:
    """A FP32 TFLite file of the module via litert-torch (torch.export + the LiteRT converter)."""
    _need("TFLite from PyTorch", "torch", "litert_torch")
    import litert_torch
    import torch

    x = example_input(shape)
    try:
        if isinstance(module, torch.export.ExportedProgram):
            module = module.module()
        if isinstance(module, torch.jit.ScriptModule):  # torch.export does not take TorchScript
            from torch._export.converter import TS2EPConverter

            module = TS2EPConverter(module, (x,)).convert().module()
        edge_model = litert_torch.convert(module, (x,))  # sources are in eval mode already
    except Exception as err:  # noqa: BLE001 - torch.export / converter errors
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ConvertError(f"litert-torch cannot convert the model: {first}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    edge_model.export(str(out))
    return out


def run(module: Any, x: np.ndarray) -> list[np.ndarray]:
    """The module's outputs for one input, as numpy arrays (for export checks)."""
    import torch

    if isinstance(module, torch.export.ExportedProgram):
        module = module.module()
    with torch.no_grad():
        y = module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    ys = y if isinstance(y, (tuple, list)) else [y]
    return [t.detach().numpy() for t in ys]
