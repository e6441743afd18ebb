"""``edge convert``: convert + quantize a model, verify it against the source, write it deployable.

    edge convert SRC --to openvino-int8 --calib VIDEO_OR_DIR [--eval ...] [--max-drop POINTS] [-q]
    edge convert train-classifier DIR [--out ...]
    edge convert dequantize-tflite MODEL [--out ...]

Exit codes: 0 ok, 1 the metric dropped more than ``--max-drop``, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from convert.errors import CheckFailed, ConvertError
from convert.nncf_output import quiet_nncf
from edge.errors import EdgeError

TARGETS = ["openvino-fp32", "openvino-fp16", "openvino-int8", "onnx-int8", "tflite-fp32", "tflite-int8"]


def _range(text: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:END fractions such as 0:0.5, got {text!r}") from None
    if not 0 <= a < b <= 1:
        raise argparse.ArgumentTypeError(f"expected 0 <= START < END <= 1, got {text!r}")
    return a, b


USAGE = """edge convert SRC --to TARGET [--calib DATA ...] [options]
       edge convert train-classifier DATA [options]
       edge convert dequantize-tflite MODEL [--out OUT]"""
COMMANDS = """other commands (each has -h):
  train-classifier DATA   train a whole-frame classifier on a few labelled images (DATA/<class>/*.jpg,
                          an edge feedback export or a labels YAML of video frames); writes an OpenVINO
                          IR and a TFLite INT8 twin with their manifests (docs/convert.md)
  dequantize-tflite MODEL a float32 TFLite copy of a quantized TFLite model: a source for the INT8 route"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge convert",
        usage=USAGE,
        description="Convert SRC to TARGET (the int8 targets are quantized on calibration data), verify it\n"
        "against the source on evaluation data, and write it with a deployable manifest and a report.",
        epilog=COMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("src", help="registry model name, a model file (.onnx, .xml, .tflite), or PyTorch: TorchScript .pt, "
                   "exported program .pt2, or package.module:factory returning an nn.Module (needs --manifest/--like)")
    p.add_argument("--to", required=True, choices=TARGETS, dest="target")
    p.add_argument("--name", help="name of the converted model (default SRC-TARGET)")
    p.add_argument("--out", default="out/converted", help="mirror-layout folder for OUT/<name>/<files> + report")
    p.add_argument("--models-dir", help="where the manifest goes (default: --out, i.e. OUT/<name>.yaml)")
    g = p.add_argument_group("source without a registry manifest")
    g.add_argument("--manifest", help="manifest YAML describing SRC (input spec, head, labels)")
    g.add_argument("--like", help="borrow input spec, head and labels from this registry model")
    g.add_argument("--entry", help="for a registry model: which of its files to convert (default its entry)")
    d = p.add_argument_group("data (videos or image folders, preprocessed as the manifest says)")
    d.add_argument("--calib", nargs="+", type=Path, default=[], help="calibration data")
    d.add_argument("--calib-frames", type=int, default=100)
    d.add_argument("--calib-range", type=_range, default=(0.0, 1.0), help="part of each video, e.g. 0:0.5")
    d.add_argument("--eval", nargs="+", type=Path, default=[], help="evaluation data (default: --calib)")
    d.add_argument("--eval-frames", type=int, default=100)
    d.add_argument("--eval-range", type=_range, default=(0.0, 1.0))
    d.add_argument("--crops-from", help="feed crops of this registry detector's boxes (crop models)")
    q = p.add_argument_group("quantization and checks")
    q.add_argument("--preset", choices=["performance", "mixed"], default="mixed",
                   help="NNCF preset: mixed = asymmetric activations, right for SiLU/Swish nets (YOLOX: 3 points "
                   "mAP drop vs 16 with performance); performance = symmetric, for ReLU nets")
    q.add_argument("--keep-float", nargs="+", default=[], metavar="OP",
                   help="OpenVINO op names (friendly names, e.g. from NNCF's log) NNCF leaves in float")
    q.add_argument("--float-stem", type=int, default=0, metavar="STRIDE",
                   help="openvino-int8: keep the ops at output stride <= STRIDE in float, e.g. 4 = the two "
                   "full-resolution stages (YOLOX: mAP drop 3.5 -> ~1 point, speed-up 1.14x -> 1.12x here); 0 = off")
    q.add_argument("--val", nargs="+", type=Path, default=[],
                   help="validation data: NNCF quantize_with_accuracy_control keeps the metric within --max-drop")
    q.add_argument("--val-frames", type=int, default=50)
    q.add_argument("--val-range", type=_range, default=(0.0, 1.0))
    q.add_argument("--max-iterations", type=int, default=12,
                   help="with --val: rounds of reverting layers to float (each re-validates)")
    q.add_argument("--io", choices=["float", "int8", "uint8"], default="float",
                   help="tflite-int8: type of the model's input and output (float = what the appliance feeds)")
    q.add_argument("--activations", choices=["int8", "int16", "float"], default="int8",
                   help="tflite-int8: activation precision (int8 = full integer; int16 = 16x8; float = weights only)")
    q.add_argument("--max-drop", type=float, help="fail (exit 1) when the metric drops more points than this")
    q.add_argument("--bench-runs", type=int, default=50, help="timed runs per backend")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no NNCF INFO lines or progress bars (a first-pull build in the appliance runs quiet)")
    return p


def _size(path: Path) -> int:
    n = path.stat().st_size
    if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
        n += path.with_suffix(".bin").stat().st_size
    return n


def convert(args: argparse.Namespace) -> dict[str, Any]:
    """Everything but printing; returns the report (also saved beside the model). With
    ``args.quiet`` NNCF's INFO lines and progress bars are off (``convert.nncf_output``)."""
    with quiet_nncf() if getattr(args, "quiet", False) else nullcontext():
        return _convert(args)


def _convert(args: argparse.Namespace) -> dict[str, Any]:
    from convert import calibrate, deploy, report, source, verify
    from edge.inference.backends import Backend, installed, load_backend

    if args.float_stem and args.target not in ("openvino-int8", "tflite-int8"):
        raise ConvertError(f"--float-stem is for --to openvino-int8 or tflite-int8, not {args.target}")
    if args.float_stem < 0:
        raise ConvertError(f"--float-stem takes an output stride such as 4 (0 = off), got {args.float_stem}")
    out_root = Path(args.out)
    src = source.resolve(args.src, manifest=args.manifest, like=args.like, entry=args.entry,
                         workdir=out_root / "_sources")
    m = src.manifest
    reference = source.open_source(src, "f32")
    tspec = reference.inputs[0]
    int8 = args.target.endswith("int8")
    if int8 and not args.calib:
        raise ConvertError(f"--to {args.target} needs calibration data: --calib VIDEO_OR_FOLDER")
    if not args.calib and not args.eval:
        raise ConvertError("give --eval (or --calib) data to verify the conversion on")
    cal_from = list(args.calib)
    calib = calibrate.samples(cal_from, m, tspec, args.calib_frames, start=args.calib_range[0],
                              end=args.calib_range[1], crops_from=args.crops_from) if cal_from else []
    eval_from = list(args.eval) or cal_from
    evals = calibrate.samples(eval_from, m, tspec, args.eval_frames, start=args.eval_range[0],
                              end=args.eval_range[1], crops_from=args.crops_from, what="evaluation")
    task = verify.Task(m, m.read_labels(src.folder))

    name = args.name or f"{m.name}-{args.target}"
    folder = out_root / name
    folder.mkdir(parents=True, exist_ok=True)
    intermediate: Backend | None = None
    fmt, backends = {"openvino": ("openvino", ["openvino"]), "onnx": ("onnx", ["onnx", "openvino"]),
                     "tflite": ("tflite", ["litert"])}[args.target.split("-")[0]]
    if args.target.startswith("openvino"):
        from convert import openvino_int8

        entry = f"{name}.xml"
        files = [entry, f"{name}.bin"]
        if args.target == "openvino-int8":
            vfn, val = None, []
            if args.val:
                val = calibrate.samples(list(args.val), m, tspec, args.val_frames, start=args.val_range[0],
                                        end=args.val_range[1], crops_from=args.crops_from, what="validation")
                vfn = verify.openvino_validation_fn(task, val, verify.reference_answers(task, reference, val))
            max_drop = (args.max_drop if args.max_drop is not None else 1.0) / 100
            openvino_int8.quantize(src.path, folder / entry, calib, preset=args.preset, validation=val,
                                   validation_fn=vfn, max_drop=max_drop, ignore=args.keep_float,
                                   max_iterations=args.max_iterations, float_stem=args.float_stem)
        else:
            openvino_int8.save_ir(src.path, folder / entry, fp16=args.target == "openvino-fp16")
    elif args.target == "onnx-int8":
        from convert import onnx_int8

        entry, files = f"{name}.onnx", [f"{name}.onnx"]
        onnx_int8.quantize(src.path, folder / entry, calib, tspec.name)
    else:
        from convert import tflite

        entry, files = f"{name}.tflite", [f"{name}.tflite"]
        fp32 = _tflite_fp32(src, folder / entry if args.target == "tflite-fp32" else out_root / "_sources" / entry)
        if args.target == "tflite-int8":
            tflite.quantize(fp32, folder / entry, calib, io=args.io, activations=args.activations,
                            float_stem=args.float_stem)
        elif fp32 != folder / entry:
            shutil.copyfile(fp32, folder / entry)
        if fp32 != src.path and fp32 != folder / entry:
            intermediate = load_backend("litert", fp32)

    # candidates: the converted model as the appliance runs it, plus the source at default precision
    converted_key = f"converted ({backends[0]})"
    cands: dict[str, Backend] = {converted_key: load_backend(backends[0], folder / entry)}
    if intermediate is not None:
        cands["intermediate tflite fp32 (litert)"] = intermediate
    if fmt == "openvino":
        cands["converted (openvino f32)"] = load_backend("openvino", folder / entry, precision="f32")
    if fmt == "onnx" and installed("openvino"):
        cands["converted (openvino)"] = load_backend("openvino", folder / entry)
    ref_key = "source (openvino f32)" if src.format != "tflite" else "source (litert)"
    timed: dict[str, Backend] = {ref_key: reference}
    if src.format != "tflite":
        cands["source (openvino default=bf16)"] = load_backend("openvino", src.path)
    if src.format == "onnx":
        cands["source (onnx)"] = load_backend("onnx", src.path)
    ver = verify.compare(task, reference, cands, evals, converted_key)
    timed.update(cands)
    lat = verify.latency(timed, evals, args.bench_runs)
    speed = {f"{converted_key} vs {k}": lat[k] / lat[converted_key] for k in timed if k.startswith("source")}
    value = ver["values"][converted_key]
    rep: dict[str, Any] = {
        "name": name,
        "target": args.target,
        "file": str(folder / entry),
        "bytes": _size(folder / entry),
        "source": {"name": m.name, "file": str(src.path), "format": src.format, "bytes": _size(src.path)},
        "reference": ref_key,
        "calibration": {"from": [str(p) for p in cal_from], "range": list(args.calib_range), "samples": len(calib),
                        "crops_from": args.crops_from},
        "evaluation": {"from": [str(p) for p in eval_from], "range": list(args.eval_range)},
        "verify": ver,
        "metric_value": value,
        "drop_points": round(100 * (1 - value), 3),
        "max_drop": args.max_drop,
        "latency_ms": lat,
        "speedup": speed,
        "machine": verify.machine(),
        "accuracy_control": bool(args.val),
        "preset": args.preset if args.target == "openvino-int8" else None,
        "float_stem": args.float_stem if args.target in ("openvino-int8", "tflite-int8") else None,
        "io": args.io if args.target == "tflite-int8" else None,
        "activations": args.activations if args.target == "tflite-int8" else None,
        "export": src.export_check or None,
    }
    overrides, why_not = _io_overrides(m, cands[converted_key]) if fmt == "tflite" else ({}, None)
    if why_not:
        rep["manifest"] = f"not written: {why_not}"
        report.save(rep, folder / "report.json")
        return rep
    deploy.write_manifest(
        m, name=name, fmt=fmt, backends=backends, folder=folder, files=files, entry=entry,
        description=f"{m.name} converted to {args.target} by edge convert ({m.description})"[:300],
        source_note=f"edge convert {m.name} --to {args.target}; calibration: {', '.join(p.name for p in cal_from)}",
        models_dir=Path(args.models_dir) if args.models_dir else out_root, source_folder=src.folder,
        overrides=overrides,
    )
    report.save(rep, folder / "report.json")
    return rep


def _tflite_fp32(src: Any, out: Path) -> Path:
    """A float TFLite of the source: itself, or via litert-torch (PyTorch, or ONNX through onnx2torch)."""
    from convert import torch_export

    if src.format == "tflite":
        return Path(src.path)
    if src.module is not None:
        return torch_export.to_tflite(src.module, src.input_shape, out)
    if src.format == "onnx":
        return torch_export.to_tflite(torch_export.onnx_module(src.path), src.input_shape, out)
    raise ConvertError(
        f"{src.path.name}: no converter from OpenVINO IR to TFLite; convert the ONNX or PyTorch original"
    )


def _io_overrides(m: Any, backend: Any) -> tuple[dict[str, Any], str | None]:
    """Manifest input changes for a TFLite model with integer input, or why the appliance cannot feed it."""
    t = backend.inputs[0]
    if not t.quantized:
        return {}, None
    spec = m.input
    plain = tuple(spec.mean) == (0, 0, 0) and tuple(spec.std) == (1, 1, 1)
    raw = abs(t.scale - 1) < 1e-3 and t.zero_point == 0 and plain
    if t.dtype.name == "uint8" and raw:
        return {"input": {**spec.model_dump(mode="json"), "dtype": "uint8"}}, None
    return {}, (f"the appliance feeds float or raw uint8 pixels; this model's input is {t.dtype.name} with scale "
                f"{t.scale:.4g}, zero point {t.zero_point} (use --io float, or uint8 for a 0..255 input)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (also ``python -m convert``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["train-classifier"]:
            from convert.train_classifier import main as train_main

            return train_main(argv[1:])
        if argv[:1] == ["dequantize-tflite"]:
            from convert.tflite import dequantize_main

            return dequantize_main(argv[1:])
        args = build_parser().parse_args(argv)
        from convert.report import table

        rep = convert(args)
        print(table(rep))
        print(f"report: {Path(rep['file']).parent / 'report.json'}")
        if args.max_drop is not None and rep["drop_points"] > args.max_drop:
            raise CheckFailed(
                f"{rep['verify']['metric']} dropped {rep['drop_points']:.2f} points > --max-drop {args.max_drop}"
            )
    except CheckFailed as err:
        print(f"edge convert: FAILED: {err}", file=sys.stderr)
        return 1
    except (ConvertError, EdgeError) as err:
        print(f"edge convert: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
