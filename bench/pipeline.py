"""Pipeline benchmark on one video file, all measured in the same run:

- decode-only fps (every frame decoded, as the reader must),
- inference-only fps (the detector alone on pre-decoded sampled frames),
- full-pipeline fps (reader + motion gate + detector + tracker + attributes + events), gating off and on,
- the ratio of pipeline throughput to the smaller of the two limits,
- the fraction of sampled frames inferred with motion gating on vs off.

Usage: python bench/pipeline.py [VIDEO] [--model NAME] [--fps N] [--repeat N]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import cv2

from edge.config import config_for_video
from edge.inference.model import Detector, load_model
from edge.replay import replay

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "car-detection.mp4"


def decode_fps(video: str, repeat: int) -> tuple[float, int, float]:
    """Frames decoded per second, frame count, source fps."""
    n, t0 = 0, time.perf_counter()
    src_fps = 0.0
    for _ in range(repeat):
        cap = cv2.VideoCapture(video)
        src_fps = cap.get(cv2.CAP_PROP_FPS)
        while cap.grab():
            cap.retrieve()
            n += 1
        cap.release()
    return n / (time.perf_counter() - t0), n // repeat, src_fps


def inference_fps(video: str, model: str, sample_every: float, repeat: int) -> float:
    """Detector calls per second on the sampled frames (decode excluded)."""
    det = load_model(model)
    assert isinstance(det, Detector)
    cap = cv2.VideoCapture(video)
    frames, i = [], 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        if int(i / sample_every) != int((i - 1) / sample_every) or i == 0:
            frames.append(f)
        i += 1
    det.detect(frames[0])  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat):
        for f in frames:
            det.detect(f)
    return len(frames) * repeat / (time.perf_counter() - t0)


def pipeline_run(video: str, model: str, fps: float, motion: bool) -> tuple[float, int, int]:
    """(sampled frames per second, frames, frames inferred) for a full replay."""
    app = config_for_video(video, detect={"fps": fps, "model": model}, motion={"enabled": motion})
    res = replay(video, app, "camera", events_out=io.StringIO(), show_progress=False)
    return res.frames / res.seconds, res.frames, res.frames_inferred


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    ap.add_argument("--model", default="vehicle-detection-0200")
    ap.add_argument("--fps", type=float, default=0, help="detect fps (default: the source fps, every frame)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    steps = 5

    def step(i: int, what: str) -> None:
        print(f"[{i}/{steps}] {what}...", file=sys.stderr, flush=True)

    step(1, "decode only")
    dec, n, src_fps = decode_fps(args.video, args.repeat)
    fps = args.fps or src_fps
    every = src_fps / fps
    step(2, f"inference only ({args.model})")
    inf = inference_fps(args.video, args.model, every, args.repeat)
    step(3, "full pipeline, motion gating off")
    runs_off = [pipeline_run(args.video, args.model, fps, False) for _ in range(args.repeat)]
    step(4, "full pipeline, motion gating on")
    runs_on = [pipeline_run(args.video, args.model, fps, True) for _ in range(args.repeat)]
    step(5, "done")
    off = max(r[0] for r in runs_off)
    on = max(r[0] for r in runs_on)
    # the reader decodes every frame but hands on 1 in `every`: in sampled frames/s the decode limit is dec/every
    dec_limit = dec / every
    limit = min(dec_limit, inf)
    frac_on = runs_on[0][2] / runs_on[0][1]
    frac_off = runs_off[0][2] / runs_off[0][1]
    print(f"video            {args.video} ({n} frames @ {src_fps:g} fps), detect fps {fps:g}, model {args.model}")
    print(f"decode only      {dec:8.1f} frames/s  (= {dec_limit:.1f} sampled frames/s)")
    print(f"inference only   {inf:8.1f} frames/s")
    print(f"pipeline (gate off) {off:5.1f} frames/s  ratio to min(decode, inference) = {off / limit:.2f}")
    print(f"pipeline (gate on)  {on:5.1f} frames/s  ratio to min(decode, inference) = {on / limit:.2f}")
    print(f"frames inferred  gate on {frac_on:.0%} ({runs_on[0][2]}/{runs_on[0][1]}), gate off {frac_off:.0%}")
    print(f"real-time factor {on / fps:.1f}x the detect rate of one camera")
    return 0


if __name__ == "__main__":
    sys.exit(main())
