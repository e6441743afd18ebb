"""Prove a conversion: per-output difference against the source, the task metric against the
source's own answers, median latency per backend (interleaved, so load hits all alike), file size.

The reference is the source model on OpenVINO with ``INFERENCE_PRECISION_HINT=f32`` (the CPU
default here is bf16), or on LiteRT for TFLite sources. Outputs are decoded by the appliance's own
heads (``edge.inference.heads``), so "agreement" means what the pipeline would see.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from convert.calibrate import Sample
from convert.metrics import cosine, mean_ap
from edge.inference.backends import Backend
from edge.inference.heads import HeadContext, get_detection_head
from edge.inference.preprocess import Letterbox
from edge.registry import Manifest
from edge.types import Detections

# detections the pipeline would keep (its default threshold) are the truth; candidates are ranked
# from a low threshold so AP sees the whole precision/recall curve
TRUTH_SCORE = 0.3
PRED_SCORE = 0.05


@dataclass
class Task:
    """Decodes outputs as the appliance does and scores a candidate against the reference."""

    manifest: Manifest
    labels: list[str]

    @property
    def metric_name(self) -> str:
        return {"detect": "mAP@0.5", "classify": "top-1 agreement"}.get(self.manifest.task, "top-1 agreement")

    def decode(self, out: dict[str, np.ndarray], lb: Letterbox, truth: bool) -> Any:
        m, head = self.manifest, self.manifest.head
        if m.task == "detect":
            ctx = HeadContext(lb, self.labels, m.label_offset, TRUTH_SCORE if truth else PRED_SCORE, head)
            return get_detection_head(head.type)(out, ctx)
        if m.task == "attributes" and head.outputs is not None:
            return tuple(int(out[k].reshape(-1).argmax()) for k in head.outputs)
        return int(next(iter(out.values())).reshape(-1).argmax())

    def score(self, truth: list[Any], pred: list[Any]) -> float:
        if self.manifest.task == "detect":
            return mean_ap(truth, pred)
        return float(np.mean([t == p for t, p in zip(truth, pred)])) if truth else 1.0

    def per_attribute(self, truth: list[Any], pred: list[Any]) -> dict[str, float]:
        """Attributes models: agreement per output (e.g. type, color)."""
        outputs = self.manifest.head.outputs
        if self.manifest.task != "attributes" or outputs is None:
            return {}
        keys = list(outputs)
        return {k: float(np.mean([t[i] == p[i] for t, p in zip(truth, pred)])) for i, k in enumerate(keys)}


def _named(backend: Backend, ref_names: list[str], out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs keyed by the reference's names (by name where they match, else by position)."""
    if set(ref_names) <= set(out):
        return out
    return dict(zip(ref_names, out.values()))


def feed(backend: Backend, s: Sample) -> dict[str, np.ndarray]:
    """Run one sample, cast to the backend's input dtype (quantized with its scale for int8/uint8 I/O)."""
    t = backend.inputs[0]
    x = s.tensor
    if t.quantized and not np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(t.dtype)
        x = np.clip(np.rint(x / t.scale + t.zero_point), info.min, info.max)
    x = x if x.dtype == t.dtype else x.astype(t.dtype)
    return backend.infer({t.name: x})


@dataclass
class Candidate:
    label: str
    backend: Backend
    decoded: list[Any] = field(default_factory=list)


def compare(
    task: Task, reference: Backend, candidates: dict[str, Backend], samples: list[Sample], primary: str
) -> dict[str, Any]:
    """Run everything on ``samples``; differences of ``primary`` and the metric of every candidate."""
    ref_names = [t.name for t in reference.outputs]
    truth: list[Any] = []
    decoded: dict[str, list[Any]] = {k: [] for k in candidates}
    diffs: dict[str, dict[str, list[float]]] = {n: {"max_abs": [], "cosine": []} for n in ref_names}
    for s in tqdm(samples, desc="verify", unit="img", leave=False, disable=not sys.stderr.isatty()):
        ref = reference.infer({reference.inputs[0].name: s.tensor})
        truth.append(task.decode(ref, s.lb, truth=True))
        for key, b in candidates.items():
            out = _named(b, ref_names, feed(b, s))
            decoded[key].append(task.decode(out, s.lb, truth=False))
            if key == primary:
                for n in ref_names:
                    a, c = ref[n].astype(np.float32), out[n].astype(np.float32).reshape(ref[n].shape)
                    diffs[n]["max_abs"].append(float(np.abs(a - c).max()))
                    diffs[n]["cosine"].append(cosine(a, c))
    result: dict[str, Any] = {
        "metric": task.metric_name,
        "samples": len(samples),
        "outputs": {
            n: {
                "max_abs": max(d["max_abs"]),
                "cosine_mean": float(np.mean(d["cosine"])),
                "cosine_min": float(np.min(d["cosine"])),
            }
            for n, d in diffs.items()
        },
        "values": {k: task.score(truth, v) for k, v in decoded.items()},
    }
    per = {k: task.per_attribute(truth, v) for k, v in decoded.items()}
    if any(per.values()):
        result["per_output"] = per
    if task.manifest.task == "detect":
        result["class_agnostic"] = {k: mean_ap(_agnostic(truth), _agnostic(v)) for k, v in decoded.items()}
        result["reference_objects"] = int(sum(len(d.class_id) for d in truth))
    return result


def _agnostic(dets: list[Detections]) -> list[Detections]:
    """Every box as one class: separates localisation from class flips between near-tied classes."""
    return [Detections(d.xyxy, d.confidence, np.zeros_like(d.class_id), d.labels) for d in dets]


def latency(backends: dict[str, Backend], samples: list[Sample], runs: int, warmup: int = 3) -> dict[str, float]:
    """Median ms per backend; the backends take turns on every sample so machine load hits all alike."""
    times: dict[str, list[float]] = {k: [] for k in backends}
    for i in range(warmup):
        for b in backends.values():
            feed(b, samples[i % len(samples)])
    for i in tqdm(range(runs), desc="benchmark", unit="run", leave=False, disable=not sys.stderr.isatty()):
        s = samples[i % len(samples)]
        for k, b in backends.items():
            t0 = time.perf_counter()
            feed(b, s)
            times[k].append((time.perf_counter() - t0) * 1000)
    return {k: round(statistics.median(v), 3) for k, v in times.items()}


def machine() -> dict[str, Any]:
    """What the timings were measured on (they are ratios within one run, not absolutes)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {"cpus": os.cpu_count(), "loadavg_1m": round(load[0], 2), "loadavg_5m": round(load[1], 2)}


def openvino_validation_fn(task: Task, samples: list[Sample], truth: list[Any]) -> Callable[[Any, list[Any]], float]:
    """A ``validation_fn`` for ``nncf.quantize_with_accuracy_control``: the task metric of a
    compiled OpenVINO model against the reference answers on ``samples``."""

    def fn(compiled: Any, items: Any) -> float:
        names = [p.get_any_name() for p in compiled.outputs]
        pred = []
        for s, x in zip(samples, items):
            res = compiled(x)
            pred.append(task.decode({n: np.asarray(res[p]) for n, p in zip(names, compiled.outputs)}, s.lb, False))
        return task.score(truth, pred)

    return fn


def reference_answers(task: Task, reference: Backend, samples: list[Sample]) -> list[Any]:
    """The reference model's decoded answers on ``samples`` (the 'labels' when none are given)."""
    return [task.decode(reference.infer({reference.inputs[0].name: s.tensor}), s.lb, True) for s in samples]


def detections_count(d: list[Detections]) -> int:
    return sum(len(x.class_id) for x in d)
