"""edge convert: errors (exit 2), a small real INT8 conversion end to end (report, manifest, the
registry and the appliance load it), ONNX INT8, --max-drop (exit 1), metrics, train-classifier.

Small on purpose (a few frames each) so the file runs in about a minute on a loaded 2-core box.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from convert import cli
from convert.metrics import cosine, mean_ap
from edge.types import Detections
from tests.conftest import error_lines, need

VIDEOS = ("car-detection.mp4", "traffic_frames.mp4", "one-by-one-person-detection.mp4")


@pytest.fixture()
def videos(shared_data: Path, model_env: Path) -> Path:
    folder = shared_data / "videos"
    for v in VIDEOS:
        need((folder / v).is_file(), str(folder / v))
    return folder


def _need_convert_extra() -> None:
    for mod in ("nncf", "sklearn", "openvino", "onnxruntime"):
        need(importlib.util.find_spec(mod) is not None, f"python package {mod} (pip install '.[convert]')")


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = cli.main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _tiny_onnx(path: Path, shape: list[int]) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["images"], ["out"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what onnxruntime of any recent version reads
    onnx.save(model, str(path))
    return path


# ---- metrics -----------------------------------------------------------------------------------


def _dets(boxes: list[list[float]], scores: list[float], cls: list[int]) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores), np.array(cls, np.int32),
                      [str(c) for c in cls])


def test_map_perfect_missing_and_wrong_class() -> None:
    t = [_dets([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9]], [0.9, 0.8], [0, 1])]
    assert mean_ap(t, t) == pytest.approx(1.0)
    assert mean_ap(t, [_dets([[0.1, 0.1, 0.3, 0.3]], [0.9], [0])]) == pytest.approx(0.5)  # class 1 missed
    assert mean_ap(t, [_dets([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9]], [0.9, 0.8], [1, 0])]) == 0.0
    assert mean_ap([_dets([], [], [])], [_dets([], [], [])]) == 1.0
    # a low-score false positive ranked after the hit leaves AP at 1
    p = [_dets([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9], [0.0, 0.6, 0.1, 0.7]], [0.9, 0.8, 0.1], [0, 1, 1])]
    assert mean_ap(t, p) == pytest.approx(1.0)
    assert cosine(np.ones(4), np.ones(4)) == pytest.approx(1.0)


# ---- bad input: one line, exit 2 ---------------------------------------------------------------


def test_unknown_model_exits_2(model_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(["no-such-model", "--to", "openvino-fp16", "--eval", "x.mp4"], capsys)
    assert rc == 2 and len(error_lines(err)) == 1 and "neither a file nor a registry model" in err


def test_model_file_without_manifest_exits_2(
    tmp_path: Path, model_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _tiny_onnx(tmp_path / "mystery.onnx", [1, 3, 416, 416])
    rc, _, err = _run([str(f), "--to", "openvino-fp16", "--eval", str(tmp_path)], capsys)
    assert rc == 2 and "has no manifest: pass --manifest" in err and len(error_lines(err)) == 1


def test_wrong_input_shape_exits_2(tmp_path: Path, model_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _tiny_onnx(tmp_path / "small.onnx", [1, 3, 64, 64])
    rc, _, err = _run([str(f), "--like", "yolox-nano-coco", "--to", "openvino-fp16", "--eval", str(tmp_path)], capsys)
    assert rc == 2 and "has shape [1, 3, 64, 64]" in err and "[1, 3, 416, 416]" in err


def test_empty_calibration_folder_exits_2(tmp_path: Path, model_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(["vehicle-detection-0200", "--to", "openvino-int8", "--calib", str(tmp_path / "empty")], capsys)
    assert rc == 2 and "no images" in err and len(error_lines(err)) == 1


def test_pytorch_file_that_is_not_a_model_exits_2(tmp_path: Path, model_env: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"x")
    rc, _, err = _run([str(pt), "--like", "yolox-nano-coco", "--to", "openvino-int8", "--calib", str(tmp_path)], capsys)
    assert rc == 2 and len(error_lines(err)) == 1
    assert "is not TorchScript" in err or "needs torch" in err


def test_edge_cli_dispatches_convert(model_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import main

    assert main(["convert", "no-such-model", "--to", "onnx-int8", "--calib", "x"]) == 2
    assert "edge convert: error" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert", "-h"])
    assert "--max-drop" in capsys.readouterr().out


def test_max_drop_fails_with_exit_1(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "convert", lambda args: {"drop_points": 2.5, "file": "/x/m.xml",
                                                       "verify": {"metric": "mAP@0.5"}})
    monkeypatch.setattr("convert.report.table", lambda rep: "table")
    rc, _, err = _run(["m", "--to", "openvino-int8", "--calib", "v.mp4", "--max-drop", "1"], capsys)
    assert rc == 1 and err.strip() == "edge convert: FAILED: mAP@0.5 dropped 2.50 points > --max-drop 1.0"
    rc, _, _ = _run(["m", "--to", "openvino-int8", "--calib", "v.mp4", "--max-drop", "3"], capsys)
    assert rc == 0


# ---- real conversions, small -------------------------------------------------------------------


def test_openvino_int8_end_to_end_deployable(tmp_path: Path, videos: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _need_convert_extra()
    out = tmp_path / "conv"
    rc, stdout, err = _run([
        "vehicle-detection-0200", "--to", "openvino-int8", "--calib", str(videos / "car-detection.mp4"),
        "--calib-frames", "6", "--calib-range", "0:0.5", "--eval", str(videos / "car-detection.mp4"),
        "--eval-range", "0.5:1", "--eval-frames", "4",
        "--bench-runs", "3", "--out", str(out), "--max-drop", "100",
    ], capsys)
    assert rc == 0, err
    name = "vehicle-detection-0200-openvino-int8"
    rep = json.loads((out / name / "report.json").read_text())
    assert rep["calibration"]["samples"] == 6 and rep["verify"]["samples"] == 4
    assert set(rep["latency_ms"]) >= {"source (openvino f32)", "source (openvino default=bf16)", "converted (openvino)"}
    assert rep["verify"]["outputs"]["detection_out"]["cosine_mean"] > 0.5
    assert 0 <= rep["drop_points"] <= 100 and rep["bytes"] < rep["source"]["bytes"]
    assert "mAP@0.5" in stdout and "speed-up" in stdout
    # deployable: the registry lists it and the appliance loads and runs it from the mirror folder
    manifest = yaml.safe_load((out / f"{name}.yaml").read_text())
    assert manifest["entry"] == f"{name}.xml" and len(manifest["files"]) == 2
    monkeypatch.setenv("EDGE_MODEL_MIRROR", str(out))
    from edge.inference.model import Detector, load_model
    from edge.registry import manifest as reg

    monkeypatch.setattr(reg, "MODELS_DIR", out)
    reg._all.cache_clear()
    try:
        assert [m.name for m in reg.list_manifests()] == [name]
        det = load_model(name)
        assert isinstance(det, Detector)
        frame = _frames(videos / "car-detection.mp4", 101)[-1]
        det.score_threshold = 0.1  # 6 calibration frames only: the car scores ~0.25 (0.9+ with 200 frames)
        assert len(det.detect(frame).xyxy) >= 1  # a car drives through at frame 100 (none at 0)
    finally:
        reg._all.cache_clear()


def _frames(video: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    out = []
    while len(out) < n:
        ok, f = cap.read()
        assert ok
        out.append(f)
    cap.release()
    return out


def test_onnx_int8_route(tmp_path: Path, videos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _need_convert_extra()
    rc, _, err = _run([
        "yolox-nano-coco", "--to", "onnx-int8", "--calib", str(videos / "one-by-one-person-detection.mp4"),
        "--calib-frames", "3", "--eval", str(videos / "traffic_frames.mp4"), "--eval-frames", "2",
        "--bench-runs", "2", "--out", str(tmp_path),
    ], capsys)
    assert rc == 0, err
    rep = json.loads((tmp_path / "yolox-nano-coco-onnx-int8" / "report.json").read_text())
    assert rep["target"] == "onnx-int8" and "converted (onnx)" in rep["latency_ms"]
    assert rep["bytes"] < rep["source"]["bytes"] / 2  # int8 weights


def test_tflite_from_openvino_ir_explains_there_is_no_converter(tmp_path: Path, videos: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    _need_convert_extra()
    rc, _, err = _run(["vehicle-detection-0200", "--to", "tflite-int8", "--calib", str(videos / "traffic_frames.mp4"),
                       "--calib-frames", "2", "--eval-frames", "1", "--out", str(tmp_path)], capsys)
    assert rc == 2 and "no converter from OpenVINO IR to TFLite" in err


def test_train_classifier_feedback_layout_and_deploy(tmp_path: Path, videos: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], model_env: Path) -> None:
    _need_convert_extra()
    spec = yaml.safe_load((Path(cli.__file__).parent / "demo" / "person-present.yaml").read_text())
    # the `edge feedback export` layout DIR/<field>/<class>/*.jpg, from a few labelled frames
    from convert.calibrate import video_frames_at
    from convert.train_classifier import _frames as ranges

    data = tmp_path / "feedback"
    for cls, frames in spec["classes"].items():
        picked = ranges(frames)[::6][:6]
        (data / "presence" / cls).mkdir(parents=True)
        for i, img in video_frames_at(videos / spec["video"], picked):
            cv2.imwrite(str(data / "presence" / cls / f"{i}.jpg"), img)
    shutil.copytree(data / "presence", data / "other")  # two fields: --field must choose
    from convert.train_classifier import main

    with pytest.raises(Exception, match="several fields"):
        main([str(data), "--out", str(tmp_path / "out")])
    assert main([str(data), "--field", "presence", "--name", "presence", "--out", str(tmp_path / "out")]) == 0
    assert "held-out accuracy" in capsys.readouterr().out
    rep = json.loads((tmp_path / "out" / "presence" / "report.json").read_text())
    assert rep["classes"] == ["empty", "person"] and rep["held_out"] >= 2
    assert rep["held_out_accuracy_exported"] == pytest.approx(rep["held_out_accuracy_head"])
    # the TFLite INT8 twin: full integer up to its float softmax, as accurate on the held-out frames
    assert rep["held_out_accuracy_tflite_int8"] >= rep["held_out_accuracy_head"] - 0.25
    tflite = Path(rep["tflite_int8"]["file"])
    assert _op_types(tflite) >= {("CONV_2D", "INT8"), ("FULLY_CONNECTED", "INT8")}
    assert ("CONV_2D", "FLOAT32") not in _op_types(tflite)
    # the appliance's whole-frame classifier stage loads both by name, beside the registry's models
    for manifest in (Path(cli.__file__).parents[1] / "models").glob("*.yaml"):
        shutil.copy(manifest, tmp_path / "out")
    monkeypatch.setenv("EDGE_MODEL_MIRROR", str(tmp_path / "out"))
    from edge.config import AppConfig
    from edge.inference.model import Classifier, load_model
    from edge.registry import manifest as reg
    from edge.replay import replay

    monkeypatch.setattr(reg, "MODELS_DIR", tmp_path / "out")
    reg._all.cache_clear()
    try:
        for name in ("presence", "presence-tflite-int8"):
            clf = load_model(name)
            assert isinstance(clf, Classifier)
            (label, score), *_ = clf.classify(cv2.imread(str(next((data / "presence" / "person").iterdir()))))
            assert label in {"empty", "person"} and 0.0 <= score <= 1.0
        # and `edge replay` runs the TFLite INT8 one: the room is seen empty, then with a person
        cam = {"url": "x.mp4", "detect": {"fps": 2, "classifier_model": "presence-tflite-int8",
                                          "attributes_model": None, "type_model": None}}
        states: list[str] = []
        replay(str(videos / spec["video"]), AppConfig.model_validate({"cameras": {"room": cam}}), "room",
               on_event=lambda e: states.append(str(e.label)) if e.type == "state" and e.phase == "start" else None,
               show_progress=False)
        assert states[:2] == ["empty", "person"] and len(states) >= 4
    finally:
        reg._all.cache_clear()


def _op_types(tflite: Path) -> set[tuple[str, str]]:
    """(operator, output tensor type) pairs of a TFLite model."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fu

    m = fu.read_model(str(tflite))
    g = m.subgraphs[0]
    ops = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return {(ops[m.operatorCodes[o.opcodeIndex].builtinCode], types[g.tensors[o.outputs[0]].type]) for o in g.operators}


def test_tflite_int8_route_from_a_float_tflite(
    tmp_path: Path, videos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _need_convert_extra()
    need(importlib.util.find_spec("ai_edge_quantizer") is not None, "python package ai-edge-quantizer")
    assert cli.main(["dequantize-tflite", "mobilenet-v2-imagenet-quant", "--out", str(tmp_path)]) == 0
    fp32 = tmp_path / "mobilenet-v2-imagenet-quant-fp32"
    manifest = yaml.safe_load((tmp_path / "mobilenet-v2-imagenet-quant-fp32.yaml").read_text())
    assert manifest["input"]["dtype"] == "float32" and manifest["input"]["mean"] == [128.0] * 3
    rc, _, err = _run([
        str(fp32 / "mobilenet-v2-imagenet-quant-fp32.tflite"), "--manifest",
        str(tmp_path / "mobilenet-v2-imagenet-quant-fp32.yaml"), "--to", "tflite-int8",
        "--calib", str(videos / "car-detection.mp4"), "--calib-frames", "4", "--calib-range", "0:0.5",
        "--eval", str(videos / "car-detection.mp4"), "--eval-range", "0.5:1", "--eval-frames", "3",
        "--bench-runs", "2", "--out", str(tmp_path),
    ], capsys)
    assert rc == 0, err
    rep = json.loads((tmp_path / "mobilenet-v2-imagenet-quant-fp32-tflite-int8" / "report.json").read_text())
    assert rep["reference"] == "source (litert)" and rep["bytes"] < rep["source"]["bytes"] / 3
    assert rep["verify"]["metric"] == "top-1 agreement"


def test_corrupt_model_file_exits_2(tmp_path: Path, model_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    args = [str(bad), "--like", "yolox-nano-coco", "--to", "openvino-int8", "--calib", str(tmp_path)]
    rc, _, err = _run(args, capsys)
    assert rc == 2 and "cannot load model" in err and len(error_lines(err)) == 1


def test_float_stem_keeps_the_full_resolution_stage_float(tmp_path: Path, videos: Path, model_env: Path) -> None:
    # YOLOX-nano's int8 error comes mostly from its stride-2/4 stage (docs/convert.md): --float-stem 4
    # leaves exactly that stage in float and quantizes the rest
    _need_convert_extra()
    import openvino as ov

    from convert import calibrate, openvino_int8, source

    src = source.resolve("yolox-nano-coco", workdir=tmp_path)
    calib = calibrate.samples([videos / "traffic_frames.mp4"], src.manifest, source.open_source(src).inputs[0], 2)
    xml = openvino_int8.quantize(src.path, tmp_path / "q.xml", calib, float_stem=4)

    def int8_weights(op: ov.Node) -> bool:
        node = op.input_value(1).get_node()
        while node.get_type_name() != "Constant":
            node = node.input_value(0).get_node()
        return bool(node.get_element_type() == ov.Type.i8)

    model = ov.Core().read_model(str(xml))
    convs = [(op.get_output_partial_shape(0)[2].get_length(), int8_weights(op)) for op in model.get_ordered_ops()
             if op.get_type_name() in ("Convolution", "GroupConvolution")]
    assert {h for h, _ in convs if h * 4 >= 416} == {208, 104}
    assert all(not q for h, q in convs if h * 4 >= 416) and all(q for h, q in convs if h * 4 < 416)
    assert sum(not q for _, q in convs) == 9  # Focus conv + the first CSP stage


def test_float_stem_is_for_int8_targets_only(model_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(["yolox-nano-coco", "--to", "onnx-int8", "--calib", "x.mp4", "--float-stem", "4"], capsys)
    assert rc == 2 and "--float-stem is for --to openvino-int8 or tflite-int8" in err and len(error_lines(err)) == 1


def test_tflite_float_stem_keeps_the_full_resolution_stage_float(tmp_path: Path, videos: Path) -> None:
    # the same option on the TFLite route (YOLOX-nano full integer: mAP 64 -> 95 with --float-stem 4)
    _need_convert_extra()
    need(importlib.util.find_spec("ai_edge_quantizer") is not None, "python package ai-edge-quantizer")
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fu

    from convert import calibrate, source, tflite

    assert cli.main(["dequantize-tflite", "mobilenet-v2-imagenet-quant", "--out", str(tmp_path)]) == 0
    fp32 = tmp_path / "mobilenet-v2-imagenet-quant-fp32" / "mobilenet-v2-imagenet-quant-fp32.tflite"
    src = source.resolve(str(fp32), manifest=tmp_path / "mobilenet-v2-imagenet-quant-fp32.yaml", workdir=tmp_path)
    calib = calibrate.samples([videos / "car-detection.mp4"], src.manifest, source.open_source(src).inputs[0], 2)
    out = tflite.quantize(fp32, tmp_path / "q.tflite", calib, float_stem=4)

    m = fu.read_model_from_bytearray(bytearray(out.read_bytes()))
    g = m.subgraphs[0]
    convs = {schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D}
    heights = [
        (int(g.tensors[op.outputs[0]].shape[1]), g.tensors[op.inputs[1]].type == schema.TensorType.INT8)
        for op in g.operators
        if m.operatorCodes[op.opcodeIndex].builtinCode in convs
    ]
    assert {h for h, _ in heights if h * 4 >= 224} == {112, 56}
    assert all(not q for h, q in heights if h * 4 >= 224) and all(q for h, q in heights if h * 4 < 224)
