"""INT8 models vs their sources on this CPU: interleaved median latency and the ratios.

    EDGE_MODEL_CACHE=/tmp/c flock -x /work/bench.lock python3 bench/convert_int8.py [--runs 200]
    O=out/converted; python3 bench/convert_int8.py --extra "ov int8=$O/yolox-int8/yolox-int8.xml" \
        "tflite w8=$O/yolox-nano-coco-tflite-int8/yolox-nano-coco-tflite-int8.tflite"

Pulls (and on first pull builds, see docs/convert.md) the INT8 models of the registry that carry a
``build:`` recipe, and times each against its source at f32 and at the CPU's default precision
(bf16 on CPUs that have it). ``--extra LABEL=FILE`` adds any converted file (.xml, .tflite, .onnx)
to the yolox-nano-coco group. The backends take turns on the same input so machine load hits all
alike; read the ratios, and run under ``flock -x`` so nothing else runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from edge.inference.backends import Backend, load_backend
from edge.registry import ensure_model, list_manifests

KIND = {".xml": "openvino", ".onnx": "onnx", ".tflite": "litert"}


def _median_ms(backends: dict[str, Backend], runs: int) -> dict[str, float]:
    feeds = {}
    for k, b in backends.items():
        t = b.inputs[0]
        x = np.random.default_rng(0).uniform(0, 255, [d if d > 0 else 1 for d in t.shape])
        feeds[k] = {t.name: x.astype(t.dtype)}
    times: dict[str, list[float]] = {k: [] for k in backends}
    for i in range(runs + 3):
        for k, b in backends.items():
            t0 = time.perf_counter()
            b.infer(feeds[k])
            if i >= 3:  # warm-up
                times[k].append((time.perf_counter() - t0) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def _print(group: str, med: dict[str, float]) -> None:
    f32, dflt = list(med.values())[:2]
    print(f"{group}:")
    for k, ms in med.items():
        print(f"  {k:<34} {ms:8.2f} ms   {f32 / ms:5.2f}x vs f32   {dflt / ms:5.2f}x vs default")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--extra", nargs="*", default=[], metavar="LABEL=FILE")
    args = ap.parse_args()
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}")
    for m in list_manifests():
        if m.build is None:
            continue
        _, folder = ensure_model(m.name)
        src_m, src_folder = ensure_model(m.build.source)
        args_ = m.build.args
        entry = args_[args_.index("--entry") + 1] if "--entry" in args_ else src_m.entry
        src = src_folder / entry
        _print(m.name, _median_ms({
            "source f32": load_backend("openvino", src, precision="f32"),
            "source default": load_backend("openvino", src),
            "int8": load_backend("openvino", folder / m.entry),
        }, args.runs))
    if args.extra:
        _, yf = ensure_model("yolox-nano-coco")
        group = {"source f32": load_backend("openvino", yf / "yolox_nano.onnx", precision="f32"),
                 "source default": load_backend("openvino", yf / "yolox_nano.onnx")}
        for item in args.extra:
            label, _, path = item.partition("=")
            group[label] = load_backend(KIND[Path(path).suffix], Path(path))
        _print("yolox-nano-coco", _median_ms(group, args.runs))


if __name__ == "__main__":
    main()
