"""Privacy layer benchmark on ``one-by-one-person-detection.mp4`` (768x432, 10 fps).

Usage: ``python bench/privacy.py [--video V] [--frames N] [--band PX] [--detector NAME]
[--quality-only | --speed-only]``

1. Mask quality: coverage (share of the person's pixels hidden) and IoU against a reference
   made by background subtraction (edge.privacy.quality: median of empty frames, max channel
   difference > 40, closed/opened, holes filled, largest blob; a 2 px band around its outline
   ignored), for people ~375 px tall (the frames) down to ~62 px (frames scaled by 1/2 .. 1/6
   and tiled into a 768x432 mosaic), on 15 frames with one standing person each, on 3 frames
   of people walking in, and on every 3rd frame where the person moves (walking in or out,
   reaching: the reference box moved > 10 px in 3 frames; whole in view, or cut by the side of
   the picture), through the privacy filter's own detector (crossroad-0078) and, for
   comparison, with the reference's own boxes. "shadows ignored": the person's shadow on the
   floor (``quality.shadows``) counts neither way either.
2. Cost per masked snapshot: ``make_snapshot`` with the default policy (people and faces
   blurred) on frames with a person, median and p90 (the person detector dominates).
3. The replay filter: ``filter_video`` with ``privacy`` against ``none`` (plain decoding and
   H.264 encoding), both in this run, frames per second and cost per filtered frame.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.app import make_snapshot  # noqa: E402
from edge.config import CameraConfig  # noqa: E402
from edge.privacy import quality as Q  # noqa: E402
from edge.privacy.filters import build_filter  # noqa: E402
from edge.privacy.policy import PrivacyFilter, PrivacyPolicy  # noqa: E402
from edge.privacy.video import filter_video  # noqa: E402
from edge.types import Frame  # noqa: E402

VIDEO = ROOT.parent / "shared" / "data" / "videos" / "one-by-one-person-detection.mp4"
EMPTY = [*range(0, 60, 5), *range(1210, 1225, 3)]
STANDING = [116, 174, 290, 348, 406, 522, 580, 638, 812, 986, 1044, 1102, 1160, 1276, 1334]
WALKING = [240, 754, 760]
SCALES = [1.0, 1 / 2, 1 / 3, 1 / 4, 1 / 6]


def read_frames(video: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """The listed frames of ``video``."""
    cap = cv2.VideoCapture(str(video))
    out: dict[int, np.ndarray] = {}
    i = 0
    while len(out) < len(set(indices)):
        ok, img = cap.read()
        if not ok:
            break
        if i in indices:
            out[i] = img
        i += 1
    return out


def moving(video: Path, bg: np.ndarray, step: int = 3) -> tuple[dict[int, np.ndarray], list[int], list[int]]:
    """Every ``step``-th frame where the one person moves (reference box moved > 10 px since the
    last one, >= 10,000 px, >= 150 px tall): the frames, those whole in view, those cut by a side."""
    cap = cv2.VideoCapture(str(video))
    out: dict[int, np.ndarray] = {}
    inside, cut = [], []
    last, i = None, 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if i % step == 0:
            ref = Q.reference_mask(img, bg)
            box = Q.reference_box(ref) if ref.sum() >= 10_000 else None
            if box and last and box[3] - box[1] >= 150 and max(abs(a - b) for a, b in zip(box, last)) > 10:
                out[i] = img
                (cut if box[0] <= 2 or box[2] >= img.shape[1] - 2 else inside).append(i)
            last = box
        i += 1
    return out, inside, cut


def quality(video: Path, band: int = Q.BAND) -> None:
    """Coverage and IoU per person height (see the module doc)."""
    f = read_frames(video, [*EMPTY, *STANDING, *WALKING])
    bg = Q.background([f[i] for i in EMPTY])
    walks, inside, cut = moving(video, bg)
    f.update(walks)
    pf = PrivacyFilter(PrivacyPolicy(faces="off"), "bench")
    detector, segmenter = pf._detector.get(), pf._segmenter.get()
    print("| person | frames | own detector: coverage | IoU | shadows ignored: coverage | IoU "
          "| reference boxes: coverage | IoU |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    rows = [("standing", STANDING, SCALES), ("walking in", WALKING, [1.0]), ("moving, whole in view", inside, [1.0])]
    for label, chosen, scales in [*rows, ("moving, cut by the side", cut, [1.0])]:
        for scale in scales:
            det, shade, ref_boxes = Q.Score(), Q.Score(), Q.Score()
            for i in chosen:
                image, ref = Q.mosaic(f[i], scale), Q.mosaic_mask(Q.reference_mask(f[i], bg), scale)
                mask = segmenter.mask(image, detector.boxes(image))
                det.add(Q.score(mask, ref, band))
                shade.add(Q.score(mask, ref, band, Q.mosaic_mask(Q.shadows(f[i], bg), scale)))
                n, _, stats, _ = cv2.connectedComponentsWithStats(ref.astype(np.uint8))
                boxes = np.array([[s[0], s[1], s[0] + s[2], s[1] + s[3]] for s in stats[1:n]], np.float32)
                ref_boxes.add(Q.score(segmenter.mask(image, boxes), ref, band))
            box = Q.reference_box(Q.reference_mask(f[chosen[0]], bg))
            height = (box[3] - box[1]) * scale if box else 0
            print(
                f"| ~{height:.0f} px {label} | {len(chosen)} | {det.coverage:.3f} | {det.iou:.3f} "
                f"| {shade.coverage:.3f} | {shade.iou:.3f} | {ref_boxes.coverage:.3f} | {ref_boxes.iou:.3f} |",
                flush=True,
            )


def camera(url: str, detector: str | None) -> CameraConfig:
    """A camera with the default privacy policy (and person ``detector`` if given)."""
    return CameraConfig(url=url, privacy={"detector": detector} if detector else {})  # type: ignore[arg-type]


def snapshot_cost(video: Path, n: int, detector: str | None = None) -> None:
    """Median/p90 ms of make_snapshot with and without the default privacy policy."""
    f = read_frames(video, STANDING[:n])
    pf = PrivacyFilter(PrivacyPolicy.for_camera(camera("x.mp4", detector)), "bench")
    pf.load()
    box = [0.35, 0.0, 0.8, 1.0]  # a crop around the person, as a passing car's would be
    for name, privacy in (("plain", None), ("masked", pf)):
        times = []
        for _ in range(3):
            for img in f.values():
                t0 = time.perf_counter()
                assert make_snapshot(Frame("c", 0, 0.0, img), box, privacy=privacy)
                times.append(time.perf_counter() - t0)
        times.sort()
        print(
            f"snapshot {name:6}: median {statistics.median(times) * 1000:.1f} ms, "
            f"p90 {times[int(len(times) * 0.9)] * 1000:.1f} ms ({len(times)} snapshots)",
            flush=True,
        )
    det, seg = pf._detector.get(), pf._segmenter.get()
    img = next(iter(f.values()))
    t = time.perf_counter()
    boxes = det.boxes(img)
    t_det = time.perf_counter() - t
    t = time.perf_counter()
    seg.mask(img, boxes)
    print(f"  of which person detector {t_det * 1000:.1f} ms, segmentation {(time.perf_counter() - t) * 1000:.1f} ms")


def filter_speed(video: Path, frames: int, detector: str | None = None) -> None:
    """The replay filter against plain decoding + encoding, in the same run."""
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(video), "-frames:v", str(frames), "-c", "copy", str(clip)],
            check=True,
        )
        cam = camera(str(clip), detector)
        for name in ("none", "privacy", "none", "privacy"):
            res = filter_video(str(clip), Path(tmp) / f"{name}.mp4", build_filter(name, cam), show_progress=False)
            print(
                f"filter {name:7}: {res.frames} frames in {res.seconds:.1f} s = {res.speed:.1f} fps "
                f"({res.seconds / res.frames * 1000:.1f} ms/frame)",
                flush=True,
            )


def main() -> None:
    """Run the parts asked for."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--frames", type=int, default=200, help="frames of the video for the filter speed")
    ap.add_argument("--band", type=int, default=2, help="px around the reference outline ignored (0: none)")
    ap.add_argument("--detector", help="person detector for the speed part (default: the policy's)")
    ap.add_argument("--quality-only", action="store_true")
    ap.add_argument("--speed-only", action="store_true")
    args = ap.parse_args()
    if not args.speed_only:
        quality(args.video, args.band)
    if not args.quality_only:
        print(f"person detector: {args.detector or PrivacyPolicy().detector}")
        snapshot_cost(args.video, 8, args.detector)
        filter_speed(args.video, args.frames, args.detector)


if __name__ == "__main__":
    main()
