"""Run each named model once on every installed backend its manifest lists, and say so.

Usage: ``python deploy/arm64/smoke.py MODEL [MODEL ...]`` (models must be in the cache).
Detectors and classifiers run on a frame of the demo clip through their real head; other
models (plate detector, OCR) get a zero tensor of their input shape. One line per
(model, backend): load time, first and second inference time, and what came out. The exit
code is the number of (model, backend) pairs that failed, plus the models that are not in the
cache themselves (a built INT8 model replaced by its source counts as a failure).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edge.inference.backends import installed, load_backend, pick_backend  # noqa: E402
from edge.inference.model import AttributeClassifier, Classifier, Detector, load_model  # noqa: E402
from edge.registry import ensure_model  # noqa: E402


def demo_frame() -> np.ndarray:
    """A frame from the middle of the demo clip (or grey if the clip is missing)."""
    import cv2

    clip = Path(os.environ.get("EDGE_SHARED", "/usr/share/edge")) / "data" / "videos" / "car-detection.mp4"
    cap = cv2.VideoCapture(str(clip))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 60)
    ok, frame = cap.read()
    cap.release()
    return frame if ok else np.full((480, 640, 3), 128, np.uint8)


def _zeros(spec_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    shape = [d if d > 0 else (1 if i == 0 else 64) for i, d in enumerate(spec_shape)]
    return np.zeros(shape, dtype)


def run_one(name: str, kind: str, frame: np.ndarray) -> str:
    """Load ``name`` on ``kind``, infer twice; a one-line summary."""
    manifest, folder = ensure_model(name)
    t0 = time.perf_counter()
    if manifest.task in ("detect", "classify", "attributes"):
        model = load_model(name, backend=kind, threads=2, precision="f32" if kind == "openvino" else "auto")
        load_s = time.perf_counter() - t0
        times, result = [], ""
        for _ in range(2):
            t1 = time.perf_counter()
            if isinstance(model, Detector):
                det = model.detect(frame)
                result = f"{len(det)} detections " + ",".join(sorted({str(x) for x in det.labels})[:3])
            elif isinstance(model, AttributeClassifier | Classifier):
                result = str(model.classify(frame))[:60]
            times.append(time.perf_counter() - t1)
        backend_key = model.backend_key
    else:
        backend = load_backend(kind, folder / manifest.entry, 2, "CPU", "auto")
        load_s = time.perf_counter() - t0
        feeds = {t.name: _zeros(t.shape, t.dtype) for t in backend.inputs}
        times = []
        for _ in range(2):
            t1 = time.perf_counter()
            out = backend.infer(feeds)
            times.append(time.perf_counter() - t1)
        result = "outputs " + " ".join(f"{k}{list(v.shape)}" for k, v in list(out.items())[:3])
        backend_key = backend.key
    return (
        f"{name:44} {backend_key:9} load {load_s:6.2f} s  infer {times[0] * 1000:8.0f} / "
        f"{times[1] * 1000:7.0f} ms  {result}"
    )


def main(names: list[str]) -> int:
    frame = demo_frame()
    failed = 0
    print("default backend per model (what edge demo / edge run use without a backend setting):")
    for name in names:
        manifest, _ = ensure_model(name)
        if manifest.name != name:  # a built model replaced by its source: not in the image's cache
            failed += 1
            print(f"  {name:44} FAILED: not in the cache, {manifest.name} runs instead")
            continue
        print(f"  {name:44} -> {pick_backend(list(manifest.backends))}")
    print(f"{'model':44} {'backend':9} (times under emulation are not device times)")
    for name in names:
        manifest, _ = ensure_model(name)
        for kind in manifest.backends:
            if not installed(kind):
                print(f"{name:44} {kind:9} not installed")
                continue
            try:
                print(run_one(name, kind, frame), flush=True)
            except Exception as err:  # report and go on: the summary counts failures
                failed += 1
                print(f"{name:44} {kind:9} FAILED: {type(err).__name__}: {str(err)[:200]}", flush=True)
    return failed


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
