"""``edge convert train-classifier``: a whole-frame classifier from a few labelled images.

Backbone: the shared ``mobilenet-v2-imagenet-quant`` (uint8 TFLite), read by OpenVINO and cut at
its global average pool (1280 features), frozen. Head: scikit-learn logistic regression. Export:
the head folded into the backbone graph (MatMul + Add + Softmax after the pool) as one OpenVINO IR
whose int8 backbone stays quantized, plus a registry manifest (task ``classify``, head
``classifier``), so ``detect.classifier_model`` can name it; and the same classifier as a
full-integer TFLite INT8 model (``<name>-tflite-int8``, :func:`export_tflite_int8`) for LiteRT.

Data: DIR/<class>/*.jpg, or the ``edge feedback export`` layout DIR/<field>/<class>/*.jpg (pick
the field with ``--field``), or a YAML of frame numbers of a video (see convert/demo/).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from convert.calibrate import IMAGE_SUFFIXES, video_frames_at
from convert.errors import ConvertError

BACKBONE = "mobilenet-v2-imagenet-quant"


def _has_images(d: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in d.iterdir() if p.is_file())


def class_folders(root: Path, field: str | None) -> dict[str, list[Path]]:
    """{class: image files} from DIR/<class>/ or DIR/<field>/<class>/."""
    if not root.is_dir():
        raise ConvertError(f"{root}: not a folder of class folders")
    subs = sorted(p for p in root.iterdir() if p.is_dir())
    if subs and not any(_has_images(s) for s in subs):  # feedback export: DIR/<field>/<class>/
        fields = [s.name for s in subs]
        if field is None and len(fields) > 1:
            raise ConvertError(f"{root} holds several fields ({', '.join(fields)}): choose one with --field")
        chosen = root / (field or fields[0])
        if not chosen.is_dir():
            raise ConvertError(f"{root} has no field {field!r}; it has {', '.join(fields)}")
        subs = sorted(p for p in chosen.iterdir() if p.is_dir())
    elif field is not None:
        raise ConvertError(f"--field {field}: {root} is a plain DIR/<class>/ layout")
    classes = {s.name: sorted(p for p in s.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) for s in subs}
    classes = {k: v for k, v in classes.items() if v}
    if len(classes) < 2:
        raise ConvertError(f"{root}: need at least two class folders with images, found {len(classes)}")
    return classes


def _frames(spec: Any) -> list[int]:
    out: list[int] = []
    for item in spec:
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*(?:/\s*(\d+))?)?\s*", str(item))
        if not m:
            raise ConvertError(f"bad frame range {item!r}: expected N or START-END[/STEP]")
        a, b, step = int(m[1]), int(m[2] or m[1]), int(m[3] or 1)
        out.extend(range(a, b + 1, step))
    return out


def load_images(src: Path, field: str | None, videos_dir: Path | None) -> tuple[list[str], list[np.ndarray], list[int]]:
    """(classes, BGR images, class index per image)."""
    import cv2

    if src.suffix.lower() in {".yaml", ".yml"}:
        try:
            spec = yaml.safe_load(src.read_text(encoding="utf-8"))
            video, groups = Path(spec["video"]), dict(spec["classes"])
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as err:
            raise ConvertError(f"{src}: not a labels file (video: ..., classes: {{name: [frames]}}): {err}") from None
        if not video.is_absolute():
            video = (videos_dir or src.parent) / video
        classes = sorted(groups)
        wanted = {f: classes.index(c) for c in classes for f in _frames(groups[c])}
        imgs, ys = [], []
        for i, frame in tqdm(
            video_frames_at(video, sorted(wanted)),
            total=len(wanted),
            desc="frames",
            leave=False,
            disable=not sys.stderr.isatty(),
        ):
            imgs.append(frame)
            ys.append(wanted[i])
        return classes, imgs, ys
    folders = class_folders(src, field)
    classes = sorted(folders)
    imgs, ys = [], []
    for k, c in enumerate(classes):
        for p in folders[c]:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise ConvertError(f"cannot read image {p} (corrupt?)")
            imgs.append(img)
            ys.append(k)
    return classes, imgs, ys


def _backbone(folder: Path, entry: str) -> tuple[Any, Any]:
    """(OpenVINO model cut at the global pool, the pool's output) of the TFLite backbone."""
    import openvino as ov

    model = ov.convert_model(str(folder / entry))
    pools = [o for o in model.get_ordered_ops() if o.get_type_name() in ("AvgPool", "ReduceMean")]
    if not pools:
        raise ConvertError(f"{entry}: no global pooling layer to cut the backbone at")
    out = pools[-1].output(0)
    for t in out.get_target_inputs():  # keep the pool's own int8 re-quantization, if any
        if t.get_node().get_type_name() == "FakeQuantize":
            out = t.get_node().output(0)
    return model, out


def export(model: Any, feat: Any, coef: np.ndarray, bias: np.ndarray, out_xml: Path) -> Path:
    """Fold ``softmax(feat @ coef.T + bias)`` into the backbone graph and save it as IR."""
    import openvino as ov
    import openvino.opset13 as ops

    flat = ops.reshape(ops.convert(feat, "f32"), ops.constant(np.array([1, -1], np.int64)), False)
    logits = ops.add(
        ops.matmul(flat, ops.constant(coef.T.astype(np.float32)), False, False),
        ops.constant(bias.astype(np.float32)[None]),
    )
    probs = ops.softmax(logits, 1)
    probs.output(0).set_names({"probs"})
    head = ov.Model([probs.output(0)], model.get_parameters(), "classifier")
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(head, str(out_xml))
    return out_xml


def held_out_accuracy(backend: Any, spec: Any, classes: list[str], imgs: list[np.ndarray], ys: list[int]) -> float:
    """Top-1 accuracy of an exported model through the appliance's backend and classifier head."""
    from edge.inference.heads import classifier
    from edge.inference.preprocess import prepare
    from edge.registry.manifest import HeadSpec

    head = HeadSpec(type="classifier", top_k=1)
    name = backend.inputs[0].name
    pred = [classifier.decode(backend.infer({name: prepare(img, spec, backend.inputs[0])[0]}), head, classes)[0][0]
            for img in imgs]
    return float(np.mean([classes.index(p) == y for p, y in zip(pred, ys)]))


def export_tflite_int8(backbone: Path, input_spec: Any, coef: np.ndarray, bias: np.ndarray, calib: list[np.ndarray],
                       out: Path) -> tuple[Path, Any]:
    """The same classifier as a TFLite INT8 model: the backbone's weights dequantized to float,
    the head grafted on (FULLY_CONNECTED + SOFTMAX), then ai-edge-quantizer full-integer INT8
    calibrated on ``calib`` images (float input/output, as the appliance feeds). Returns the file
    and its input spec (float input: ``(pixel - zero_point) * scale`` of the uint8 backbone)."""
    import tempfile

    from convert.calibrate import Sample
    from convert.tflite import dequantize, quantize, with_classifier_head
    from edge.inference.backends import load_backend
    from edge.inference.preprocess import prepare
    from edge.registry.manifest import InputSpec

    with tempfile.TemporaryDirectory(prefix="edge-classifier-") as tmp:
        fp32, (scale, zp) = dequantize(backbone, Path(tmp) / "backbone-fp32.tflite")
        spec = InputSpec(**{**input_spec.model_dump(), "dtype": "float32", "mean": [zp] * 3, "std": [1.0 / scale] * 3})
        graft = with_classifier_head(fp32, Path(tmp) / "classifier-fp32.tflite", coef, bias)
        tensor = load_backend("litert", graft).inputs[0]
        samples = [Sample(*prepare(img, spec, tensor), origin=f"train#{i}") for i, img in enumerate(calib)]
        quantize(graft, out, samples)
    return out, spec


def main(argv: Sequence[str] | None = None) -> int:
    from convert.help_text import plain_help

    p = argparse.ArgumentParser(prog="edge convert train-classifier", description=plain_help(__doc__.splitlines()[0]))
    p.add_argument("data", type=Path, help="DIR/<class>/, DIR/<field>/<class>/ (edge feedback export) or labels YAML")
    p.add_argument("--field", help="which field of an edge feedback export to train on")
    p.add_argument("--name", help="model name (default: <folder or labels file>-classifier)")
    p.add_argument("--out", type=Path, default=Path("out/converted"), help="mirror-layout output folder")
    p.add_argument("--models-dir", type=Path, help="where the manifest goes (default --out)")
    p.add_argument("--videos-dir", type=Path, default=None, help="where a labels YAML's video is (default: shared)")
    p.add_argument("--holdout", type=float, default=0.3, help="fraction held out for the accuracy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calib-images", type=int, default=100, help="training images calibrating the TFLite INT8 export")
    args = p.parse_args(argv)

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from convert import deploy, report
    from edge.inference.backends import load_backend
    from edge.inference.preprocess import prepare
    from edge.registry import ensure_model
    from edge.registry.manifest import HeadSpec, InputSpec

    shared = Path(os.environ.get("EDGE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    classes, imgs, ys = load_images(args.data, args.field, args.videos_dir or shared / "data" / "videos")
    y = np.array(ys)
    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 2:
        raise ConvertError(f"every class needs at least 2 images; counts: {dict(zip(classes, counts.tolist()))}")
    base, folder = ensure_model(BACKBONE)
    assert base.input is not None
    model, feat = _backbone(folder, base.entry)
    import openvino as ov

    compiled = ov.Core().compile_model(ov.Model([feat], model.get_parameters()), "CPU", {"INFERENCE_NUM_THREADS": 2})
    spec = load_backend("litert", folder / base.entry).inputs[0]
    feats = np.stack(
        [
            np.asarray(compiled(prepare(img, base.input, spec)[0])[0]).reshape(-1)
            for img in tqdm(imgs, desc="features", unit="img", leave=False, disable=not sys.stderr.isatty())
        ]
    )
    idx_tr, idx_te = train_test_split(np.arange(len(y)), test_size=args.holdout, random_state=args.seed, stratify=y)
    clf = LogisticRegression(max_iter=2000, C=1.0, class_weight="balanced")
    clf.fit(feats[idx_tr], y[idx_tr])
    acc_head = float(clf.score(feats[idx_te], y[idx_te]))
    coef, bias = clf.coef_, clf.intercept_
    if len(classes) == 2:  # sklearn's binary form: one row for class 1
        coef, bias = np.vstack([-coef / 2, coef / 2]), np.array([-bias[0] / 2, bias[0] / 2])

    name = args.name or f"{args.data.stem}-classifier"
    out_folder = args.out / name
    entry = f"{name}.xml"
    export(model, feat, coef, bias, out_folder / entry)
    # prove the export with the appliance's backend and classifier head on the held-out images
    in_spec = InputSpec(**{**base.input.model_dump(), "name": None})
    head = HeadSpec(type="classifier", top_k=min(5, len(classes))).model_dump(mode="json")  # only the keys set
    test_imgs, test_ys = [imgs[i] for i in idx_te], [int(y[i]) for i in idx_te]
    acc_export = held_out_accuracy(load_backend("openvino", out_folder / entry), in_spec, classes, test_imgs, test_ys)
    tfl_name = f"{name}-tflite-int8"
    tfl_entry = f"{tfl_name}.tflite"
    calib = [imgs[i] for i in idx_tr[: args.calib_images]]
    tfl_path, tfl_spec = export_tflite_int8(folder / base.entry, in_spec, coef, bias, calib,
                                            args.out / tfl_name / tfl_entry)  # the quantizer reports its steps
    acc_tflite = held_out_accuracy(load_backend("litert", tfl_path), tfl_spec, classes, test_imgs, test_ys)
    for m_name, fmt, backend, files, m_spec, what in (
        (name, "openvino", "openvino", [entry, f"{name}.bin"], in_spec, f"{BACKBONE} features + logistic regression"),
        (tfl_name, "tflite", "litert", [tfl_entry], tfl_spec, "the same as TFLite INT8 (full integer, float I/O)"),
    ):
        deploy.write_manifest(
            base,
            name=m_name,
            fmt=fmt,
            backends=[backend],
            folder=args.out / m_name,
            files=files,
            entry=files[0],
            description=f"whole-frame classifier ({', '.join(classes)}): {what}, by edge convert train-classifier",
            source_note=f"edge convert train-classifier {args.data}",
            models_dir=args.models_dir or args.out,
            overrides={"task": "classify", "head": head, "labels": classes, "input": m_spec.model_dump(mode="json")},
        )
    rep = {
        "name": name,
        "classes": classes,
        "images": dict(zip(classes, counts.tolist())),
        "train": len(idx_tr),
        "held_out": len(idx_te),
        "held_out_accuracy_head": acc_head,
        "held_out_accuracy_exported": acc_export,
        "held_out_accuracy_tflite_int8": acc_tflite,
        "tflite_int8": {"name": tfl_name, "file": str(tfl_path), "bytes": tfl_path.stat().st_size,
                        "calibration_images": len(calib)},
        "backbone": BACKBONE,
        "file": str(out_folder / entry),
        "bytes": (out_folder / entry).stat().st_size + (out_folder / f"{name}.bin").stat().st_size,
    }
    report.save(rep, out_folder / "report.json")
    print(json.dumps({k: rep[k] for k in ("name", "images", "train", "held_out")}))
    print(
        f"held-out accuracy: head {acc_head * 100:.1f}%, exported model on the appliance's backend "
        f"{acc_export * 100:.1f}% (OpenVINO), {acc_tflite * 100:.1f}% (TFLite INT8 on LiteRT) ({len(idx_te)} images)"
    )
    manifests = args.models_dir or args.out
    print(f"model: {out_folder / entry}  manifest: {manifests / (name + '.yaml')}")
    print(f"model: {tfl_path}  manifest: {manifests / (tfl_name + '.yaml')}")
    return 0
