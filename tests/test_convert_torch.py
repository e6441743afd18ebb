"""edge convert with PyTorch sources: an nn.Module factory, TorchScript and an exported program,
to OpenVINO IR and to TFLite (FP32 and INT8 via litert-torch + ai-edge-quantizer), each verified
against the PyTorch model and deployable. A tiny classifier built here keeps it to seconds.

Needs the [torch] extra (~1.6 GB), which CI does not install (docs/convert.md): these tests skip
wherever it is missing, CI included, and run where it is installed (about 25 s).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from convert import cli
from edge.inference.backends import load_backend


def tiny_classifier() -> object:
    """A seeded 4-class conv net on 32x32 BGR frames (the factory `edge convert` imports)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4), nn.Softmax(dim=1),
    ).eval()


@pytest.fixture()
def torch_env(tmp_path: Path, shared_data: Path, model_env: Path) -> Path:
    for mod in ("torch", "litert_torch", "onnx2torch", "ai_edge_quantizer", "openvino"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"python package {mod} missing: the [torch] extra is not part of the CI install")
    manifest = {
        "name": "tiny-classifier", "task": "classify", "format": "onnx", "backends": ["onnx"],
        "files": [{"path": "x", "url": "edge-convert:x", "sha256": "0" * 64}], "entry": "x",
        "input": {"size": [32, 32], "layout": "NCHW"}, "head": {"type": "classifier", "top_k": 1},
        "labels": ["a", "b", "c", "d"], "licence": "test",
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(manifest))
    return tmp_path


def _convert(src: str, target: str, env: Path, data: Path, *extra: str) -> dict:
    video = str(data / "videos" / "traffic_frames.mp4")
    rc = cli.main([src, "--manifest", str(env / "tiny.yaml"), "--to", target, "--calib", video, "--calib-frames", "8",
                   "--eval", video, "--eval-frames", "6", "--bench-runs", "2", "--out", str(env / "out"),
                   "--name", f"tiny-{target}", *extra])
    assert rc == 0
    return json.loads((env / "out" / f"tiny-{target}" / "report.json").read_text())


def test_module_factory_to_openvino_and_tflite_int8(torch_env: Path, shared_data: Path) -> None:
    factory = "tests.test_convert_torch:tiny_classifier"
    rep = _convert(factory, "openvino-fp32", torch_env, shared_data)
    assert rep["export"]["torch_vs_openvino_ir_max_abs"] < 1e-4  # the IR computes what the module does
    assert rep["verify"]["values"]["converted (openvino)"] == 1.0
    assert (torch_env / "out" / "tiny-openvino-fp32.yaml").is_file()

    rep = _convert(factory, "tflite-int8", torch_env, shared_data, "--io", "uint8")
    model = Path(rep["file"])
    backend = load_backend("litert", model)
    assert backend.inputs[0].dtype == np.uint8  # integer I/O where asked
    assert rep["io"] == "uint8"
    # the litert-torch FP32 step is exact; INT8 agrees on most frames of a random-weight net
    assert rep["verify"]["values"]["intermediate tflite fp32 (litert)"] == 1.0
    assert rep["verify"]["values"]["converted (litert)"] >= 0.5


def test_torchscript_and_exported_program_sources(torch_env: Path, shared_data: Path) -> None:
    import torch

    module = tiny_classifier()
    x = torch.zeros(1, 3, 32, 32)
    torch.jit.save(torch.jit.trace(module, x), str(torch_env / "tiny.pt"))
    torch.export.save(torch.export.export(module, (x,)), str(torch_env / "tiny.pt2"))

    rep = _convert(str(torch_env / "tiny.pt"), "tflite-fp32", torch_env, shared_data)
    assert rep["verify"]["values"]["converted (litert)"] == 1.0
    manifest = yaml.safe_load((torch_env / "out" / "tiny-tflite-fp32.yaml").read_text())
    assert manifest["format"] == "tflite" and manifest["backends"] == ["litert"]

    rep = _convert(str(torch_env / "tiny.pt2"), "openvino-int8", torch_env, shared_data)
    assert rep["export"]["torch_vs_openvino_ir_max_abs"] < 1e-4 and rep["target"] == "openvino-int8"


def test_onnx_to_tflite_through_onnx2torch_bakes_constant_inputs(torch_env: Path, shared_data: Path) -> None:
    """Slice / Resize / Reshape with initializer inputs (what torch.export cannot trace in
    onnx2torch's modules) convert exactly to TFLite."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, values: list, dtype: type = np.int64) -> onnx.TensorProto:
        return numpy_helper.from_array(np.array(values, dtype=dtype), name)

    nodes = [
        helper.make_node("Slice", ["images", "s0", "s1", "s2", "s3"], ["half"]),  # every 2nd row
        helper.make_node("Resize", ["half", "", "scales"], ["full"], mode="nearest"),
        helper.make_node("Reshape", ["full", "shape"], ["flat"]),
        helper.make_node("Softmax", ["flat"], ["out"], axis=1),
    ]
    inits = [const("s0", [0]), const("s1", [32]), const("s2", [2]), const("s3", [2]),
             const("scales", [1, 1, 2, 1], np.float32), const("shape", [0, -1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3072])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(torch_env / "tiny.onnx"))

    rep = _convert(str(torch_env / "tiny.onnx"), "tflite-fp32", torch_env, shared_data)
    assert rep["verify"]["outputs"]["out"]["max_abs"] < 1e-5
    assert rep["verify"]["values"]["converted (litert)"] == 1.0
