"""Where an INT8 model's time goes on this CPU, by kernel, against its FP32 source (OpenVINO).

    flock -x /work/bench.lock python3 bench/int8_ops.py SOURCE.onnx|xml INT8.xml [--threads 2] [--runs 100]

Runs both models at f32 precision with OpenVINO's per-node counters and prints, per (node type,
kernel) pair, the median milliseconds per inference of each model and their ratio, then the whole
models' median latency (interleaved runs) and its ratio. It shows the ceiling of INT8 on a CPU:
e.g. without VNNI the AVX2 int8 1x1 convolutions are ~1.4x faster than f32, depthwise ones no
faster, and slices, concats and reorders cost the same.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import openvino as ov

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.convert_int8 import _median_ms  # noqa: E402
from edge.inference.backends import load_backend  # noqa: E402


def _profile(req: ov.InferRequest, x: np.ndarray, runs: int) -> dict[str, float]:
    per: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        req.infer({0: x})
        one: dict[str, float] = defaultdict(float)
        for p in req.profiling_info:
            one[f"{p.node_type} [{p.exec_type}]"] += p.real_time.total_seconds() * 1000
        for k, v in one.items():
            per[k].append(v)
    return {k: statistics.median(v) for k, v in per.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("int8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args()
    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"}
    compiled = {k: core.compile_model(p, "CPU", {**cfg, "PERF_COUNT": True})
                for k, p in (("fp32", args.source), ("int8", args.int8))}
    shape = [d if d > 0 else 1 for d in compiled["fp32"].inputs[0].get_partial_shape().get_min_shape()]
    x = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, threads {args.threads}, input {shape}")
    prof = {k: _profile(c.create_infer_request(), x, args.runs) for k, c in compiled.items()}
    a_, b_ = prof["fp32"], prof["int8"]
    rows = sorted(set(a_) | set(b_), key=lambda k: -max(a_.get(k, 0.0), b_.get(k, 0.0)))
    print(f"{'node type [kernel]':<44} {'fp32 ms':>8} {'int8 ms':>8}")
    for k in rows:
        a, b = prof["fp32"].get(k, 0.0), prof["int8"].get(k, 0.0)
        if max(a, b) >= 0.05:
            print(f"{k:<44} {a:8.2f} {b:8.2f}")
    # whole-model latency without the counters: the appliance's backend at f32, runs interleaved
    med = _median_ms({k: load_backend("openvino", Path(p), threads=args.threads, precision="f32")
                      for k, p in (("fp32", args.source), ("int8", args.int8))}, args.runs)
    print(f"whole model: fp32 {med['fp32']:.2f} ms, int8 {med['int8']:.2f} ms, {med['fp32'] / med['int8']:.2f}x")

if __name__ == "__main__":
    main()
