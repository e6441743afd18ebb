"""Calibration / evaluation samples: images from a folder, or frames sampled evenly from a video,
optionally cropped by a detector (for crop models such as vehicle attributes), then preprocessed
by the appliance's own ``edge.inference.preprocess.prepare`` as the model's manifest says."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from convert.errors import ConvertError
from edge.inference.backends import TensorSpec
from edge.inference.preprocess import Letterbox, prepare
from edge.registry import Manifest

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}


def image_height(shape: list[int]) -> int:
    """Height of a batch-1 image input shaped N,C,H,W or N,H,W,C (C 1 or 3); -1 marks a dynamic
    dimension. For ``--float-stem``, whose stride is relative to this height."""
    if len(shape) != 4:
        raise ConvertError("--float-stem needs a 4-D image input (N,C,H,W or N,H,W,C)")
    height = shape[2] if shape[1] in (1, 3) else shape[1]
    if height <= 0:
        raise ConvertError("--float-stem needs a static input height")
    return height


@dataclass
class Sample:
    """One preprocessed input: the tensor and how the image was fitted into it."""

    tensor: np.ndarray
    lb: Letterbox
    origin: str  # "video.mp4#123" or "img.jpg", for reports


def _video_frames(path: Path, count: int, start: float, end: float) -> Iterator[tuple[str, np.ndarray]]:
    """``count`` frames spread evenly over the ``start``..``end`` fraction of the video."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ConvertError(f"cannot open video {path}")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    if total <= 0:
        raise ConvertError(f"video {path} has no frames")
    lo, hi = int(total * start), max(int(total * end), int(total * start) + 1)
    idx = np.unique(np.linspace(lo, hi - 1, min(count, hi - lo)).round().astype(int))
    for i, frame in video_frames_at(path, idx.tolist()):
        yield f"{path.name}#{i}", frame


def video_frames_at(path: Path, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """The frames with these indices (read sequentially; for labels kept as frame numbers)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ConvertError(f"cannot open video {path}")
    wanted, i = set(indices), 0
    try:
        while wanted:
            ok, frame = cap.read()
            if not ok:
                break
            if i in wanted:
                wanted.discard(i)
                yield i, frame
            i += 1
    finally:
        cap.release()
    if wanted:
        raise ConvertError(f"{path} has no frames {sorted(wanted)[:5]}")


def images(path: Path, count: int, start: float = 0.0, end: float = 1.0) -> Iterator[tuple[str, np.ndarray]]:
    """BGR images from a folder (sorted, recursive) or ``count`` frames evenly spread over the part
    ``start..end`` (fractions) of a video."""
    if not path.exists():
        raise ConvertError(f"calibration/evaluation data not found: {path}")
    if path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise ConvertError(f"{path}: not a video or a folder of images")
        yield from _video_frames(path, count, start, end)
        return
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConvertError(f"{path}: no images (.jpg/.png) in this folder")
    step = max(1, len(files) // max(count, 1))
    for p in files[::step][:count]:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise ConvertError(f"cannot read image {p} (corrupt?)")
        yield p.name, img


def crops(frames: Iterator[tuple[str, np.ndarray]], detector: str, count: int) -> Iterator[tuple[str, np.ndarray]]:
    """Crops of the objects ``detector`` (a registry detector) finds, as the pipeline feeds crop models."""
    from edge.inference.model import Detector, load_model

    det = load_model(detector)
    if not isinstance(det, Detector):
        raise ConvertError(f"--crops-from {detector}: not a detector")
    n = 0
    for origin, frame in frames:
        h, w = frame.shape[:2]
        for k, box in enumerate(det.detect(frame).xyxy):
            x0, y0, x1, y1 = (box * [w, h, w, h]).round().astype(int)
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            yield f"{origin}/{k}", frame[y0:y1, x0:x1]
            n += 1
            if n >= count:
                return


def samples(
    sources: list[Path],
    manifest: Manifest,
    tensor: TensorSpec,
    count: int,
    *,
    start: float = 0.0,
    end: float = 1.0,
    crops_from: str | None = None,
    what: str = "calibration",
) -> list[Sample]:
    """Up to ``count`` preprocessed samples in all from ``sources`` (shared between them)."""
    assert manifest.input is not None
    out: list[Sample] = []
    per = max(1, -(-count // max(len(sources), 1)))
    with tqdm(total=count, desc=f"{what} data", unit="img", leave=False, disable=not sys.stderr.isatty()) as bar:
        for src in sources:
            it = images(src, per if crops_from is None else max(per // 2, 4), start, end)
            if crops_from:
                it = crops(it, crops_from, per)
            for origin, img in it:
                t, lb = prepare(img, manifest.input, tensor)
                out.append(Sample(t, lb, origin))
                bar.update(1)
                if len(out) >= count:
                    return out
    if not out:
        raise ConvertError(f"no {what} samples from {', '.join(map(str, sources))}")
    return out
