"""Plates from full-resolution frames: what it costs and what it gains, from one run.

    python3 bench/fullres.py                       # BR + EU photos and traffic_frames.mp4 (~3 min)
    python3 bench/fullres.py --limit 20 --out docs/fullres-bench.md

Two cameras that differ only in ``plates.full_resolution`` (``detect.width: 768``, plates on, no
region formats, motion gate off) see the same frames:

* **detect-size** (``full_resolution: false``, the old behaviour): the reader resizes every frame
  to 768 px wide, plates are cropped from that frame;
* **full-res** (``full_resolution: true``): the reader delivers the native frame, the pipeline
  resizes a copy for detection and crops plates from the native frame.

Photos (OpenALPR ``br`` ~1280x1280 and ``eu`` ~576x432, ``NAME.txt`` gives the plate) are each
shown as ``--frames`` frames of a still camera, once as they are and once unscaled in the
middle of a mid-gray 3840x2160 frame (a car at the native pixel scale of a 4K camera; the
gray surround is synthetic, the car's pixels are the photo's), one photo every 10 s of camera time so every
track ends between photos. A photo counts as read when the last published plate of one of its
tracks is the ground truth exactly. Per frame the bench measures the CPU time of the process
(all threads, inference included) for the reader's resize plus ``Pipeline.process``; decoding
is the same in both modes and not included. Memory: the bytes of one delivered frame, and what
the reader's buffer holds (1 frame live, 4 frames replaying a file). The video
(``traffic_frames.mp4``, 960x540) goes through the real reader and decoder (``edge replay``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("EDGE_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("EDGE_MODEL_MIRROR", str(SHARED / "models"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edge.config import AppConfig, config_for_video  # noqa: E402
from edge.pipeline import Pipeline  # noqa: E402
from edge.replay import replay  # noqa: E402
from edge.sources.reader import _REPLAY_QUEUE, native_frames  # noqa: E402
from edge.sources.sampling import resize  # noqa: E402
from edge.types import Frame  # noqa: E402

MODES = {"detect-size": False, "full-res": True}
WIDTH = 768
CANVAS = (3840, 2160)  # a 4K camera: see place()


@dataclass
class ModeResult:
    """One mode's numbers over a set of photos or a video."""

    cpu_ms: list[float] = field(default_factory=list)
    frame_bytes: list[int] = field(default_factory=list)
    read: int = 0
    wrong: int = 0  # a plate published that is not the truth (and none that is)
    images: int = 0
    correct: set[str] = field(default_factory=set)


def camera(url: str, full: bool, **extra: Any) -> AppConfig:
    """The bench camera: 768-wide detection, plates on (no regions), nothing gated."""
    return config_for_video(
        url,
        detect={"fps": 5, "width": WIDTH},
        motion={"enabled": False},
        tracker={"min_hits": 2},
        plates={"full_resolution": full},
        **extra,
    )


def load_photos(folder: Path, limit: int | None) -> list[tuple[str, Path, str]]:
    """(name, image, plate) from OpenALPR annotations (``NAME.jpg<TAB>x<TAB>y<TAB>w<TAB>h<TAB>PLATE``)."""
    out = []
    for txt in sorted(folder.glob("*.txt")):
        parts = txt.read_text(encoding="utf-8").strip().split("\t")
        image = folder / parts[0]
        if len(parts) >= 6 and image.is_file():
            out.append((image.stem, image, parts[5].upper()))
    return out[:limit] if limit else out


def place(photo: np.ndarray, canvas: tuple[int, int] | None) -> np.ndarray:
    """The photo unscaled in the middle of a mid-gray ``canvas`` (w, h) frame, or as it is:
    a vehicle at the native pixel scale of a camera with that resolution."""
    if canvas is None:
        return photo
    w, h = canvas
    ph, pw = photo.shape[:2]
    out = np.full((h, w, 3), 118, np.uint8)
    x0, y0 = (w - pw) // 2, (h - ph) // 2
    out[y0 : y0 + ph, x0 : x0 + pw] = photo
    return out


def run_photos(
    photos: list[tuple[str, Path, str]], full: bool, frames: int, canvas: tuple[int, int] | None = None
) -> ModeResult:
    """Every photo (``place``d on ``canvas``) as ``frames`` frames of one still camera, through one pipeline."""
    app = camera("photos.mp4", full)
    cfg = app.cameras["camera"]
    native = native_frames(cfg)
    pipeline = Pipeline("camera", cfg, app)
    res = ModeResult()
    for k, (name, path, truth) in enumerate(photos):
        decoded = place(cv2.imread(str(path)), canvas)
        last: dict[int, str] = {}
        for i in range(frames):
            t0 = time.process_time()
            image = decoded if native else resize(decoded, WIDTH, None)  # what the reader delivers
            frame = Frame("camera", k * frames + i, 10.0 * k + 0.2 * i, image)
            events = pipeline.process(frame)
            res.cpu_ms.append((time.process_time() - t0) * 1000)
            res.frame_bytes.append(image.nbytes)
            for e in events:
                if e.type == "plate" and e.attrs.get("plate"):
                    last[e.track or 0] = str(e.attrs["plate"])
        for e in pipeline.close(10.0 * k + 0.2 * frames):
            if e.type == "plate" and e.attrs.get("plate"):
                last[e.track or 0] = str(e.attrs["plate"])
        res.images += 1
        if truth in last.values():
            res.read += 1
            res.correct.add(name)
        elif last:
            res.wrong += 1
    return res


def run_video(video: Path, full: bool) -> tuple[ModeResult, int]:
    """The real reader and decoder (``edge replay``): CPU ms per frame, plates published."""
    app = camera(str(video), full)
    events: list[Any] = []
    t0 = time.process_time()
    result = replay(str(video), app, "camera", on_event=events.append, show_progress=False, start_time=0.0)
    res = ModeResult(cpu_ms=[(time.process_time() - t0) * 1000 / max(1, result.frames)])
    cap = cv2.VideoCapture(str(video))
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    shape = (h, w) if native_frames(app.cameras["camera"]) else (round(h * WIDTH / w), WIDTH)
    res.frame_bytes.append(shape[0] * shape[1] * 3)
    plates = {str(e.attrs.get("plate")) for e in events if e.type == "plate"}
    res.read = len(plates)
    return res, result.frames


def mb(n: float) -> str:
    return f"{n / 1e6:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="photos per folder (default: all)")
    ap.add_argument("--frames", type=int, default=4, help="frames per photo")
    ap.add_argument("--folders", nargs="*", default=["br", "eu"])
    ap.add_argument("--out", type=Path, default=None, help="also write the tables (markdown) here")
    args = ap.parse_args()

    lines = [
        f"load average at start {os.getloadavg()[0]:.2f}; detect.width {WIDTH}, plates without regions",
        "",
        "| set | mode | frame size | plates read exactly | wrong plate | CPU ms/frame (median, mean) "
        "| MB per frame | MB buffered live / replay |",
        "|---|---|---|---|---|---|---|---|",
    ]
    gained: dict[str, tuple[set[str], set[str]]] = {}
    sets = [(f, None) for f in args.folders] + [(f, CANVAS) for f in args.folders]
    for folder, canvas in sets:
        photos = load_photos(SHARED / "data" / "openalpr" / folder, args.limit)
        results = {mode: run_photos(photos, full, args.frames, canvas) for mode, full in MODES.items()}
        if canvas is not None:
            folder = f"{folder} in {canvas[0]}x{canvas[1]}"
        for mode, r in results.items():
            size = statistics.median(r.frame_bytes)
            lines.append(
                f"| {folder} ({r.images} photos) | {mode} | {mb(size)} MB median | {r.read}/{r.images} "
                f"({100 * r.read / max(1, r.images):.1f}%) | {r.wrong} | {statistics.median(r.cpu_ms):.1f}, "
                f"{statistics.fmean(r.cpu_ms):.1f} | {mb(size)} | {mb(size)} / {mb(size * _REPLAY_QUEUE)} |"
            )
        base, full = results["detect-size"], results["full-res"]
        gained[folder] = (full.correct - base.correct, base.correct - full.correct)
        ratio = statistics.fmean(full.cpu_ms) / statistics.fmean(base.cpu_ms)
        gain = full.read - base.read
        lines.append(f"| {folder} | full-res / detect-size | | {gain:+d} | | x{ratio:.2f} (mean) | | |")
    video = SHARED / "data" / "videos" / "traffic_frames.mp4"
    if video.is_file():
        vres = {mode: run_video(video, full) for mode, full in MODES.items()}
        for mode, (r, n) in vres.items():
            lines.append(
                f"| traffic_frames.mp4 ({n} frames, real decode) | {mode} | | {r.read} plates published | "
                f"| {r.cpu_ms[0]:.1f} (mean) | {mb(r.frame_bytes[0])} | "
                f"{mb(r.frame_bytes[0])} / {mb(r.frame_bytes[0] * _REPLAY_QUEUE)} |"
            )
    lines.append("")
    for folder, (won, lost) in gained.items():
        lines.append(f"{folder}: read only from full-res frames: {sorted(won)}; only from detect-size: {sorted(lost)}")
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
