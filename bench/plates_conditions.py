"""Plates in harder conditions: every labelled photo of OpenALPR-format folders read turned by
each of a list of angles (a hand-held or rolled camera) and darkened to each of a list of light
levels (dusk, shade, an under-exposed camera); exact reads per condition.

    python bench/plates_conditions.py ../shared/data/openalpr/eu ../shared/data/openalpr/br \
        --angles -12,-8,-4,0,4,8,12 --light 0.5,0.25

Positive angles turn the picture counter-clockwise (the plate's right end goes up). A photo
that is itself one plate crop is padded first, so turning it keeps the plate in the picture.
Light ``L`` maps each pixel value ``v`` (0..1) to ``L * v ** (1 / L)``: half the light is also
more contrast in the shadows lost, as a camera's exposure and gamma do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edge.plates import PlateReader, PlatesConfig
from edge.plates.bench import load_folder

try:
    from tqdm import tqdm
except ImportError:  # progress is a nicety
    tqdm = None


def rotated(img: np.ndarray, degrees: float) -> np.ndarray:
    """``img`` turned by ``degrees`` about its centre, same size, border pixels replicated."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def darkened(img: np.ndarray, light: float) -> np.ndarray:
    """``img`` with ``light`` of its light (see the module docstring)."""
    v = np.arange(256, dtype=np.float64) / 255.0
    lut = np.clip(255.0 * light * v ** (1.0 / light), 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--angles", default="-12,-8,-4,0,4,8,12", help="comma-separated degrees")
    ap.add_argument("--light", default="0.5,0.25", help="comma-separated light levels (1 = as taken)")
    ap.add_argument("--regions", default="", help="comma-separated region codes for the reader")
    ap.add_argument("--every", type=int, default=1, help="every Nth photo of each folder")
    args = ap.parse_args(argv)
    conditions: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = []
    for a in (float(a) for a in args.angles.split(",") if a):
        conditions.append((f"{a:+.0f}deg", lambda img, a=a: rotated(img, a) if a else img))
    for light in (float(v) for v in args.light.split(",") if v):
        conditions.append((f"light{light:g}", lambda img, light=light: darkened(img, light)))
    reader = PlateReader(PlatesConfig(regions=[r for r in args.regions.split(",") if r]))
    print(f"{'folder':<14} {'n':>4} " + " ".join(f"{name:>8}" for name, _ in conditions))
    for d in args.dirs:
        samples = load_folder(d)[:: args.every]
        hits = [0] * len(conditions)
        todo = [(s, i) for s in samples for i in range(len(conditions))]
        for s, i in tqdm(todo, desc=d.name, leave=False) if tqdm else todo:
            img = cv2.imread(str(s.image))
            if img is None:
                raise SystemExit(f"cannot read image {s.image}")
            if s.box[2] - s.box[0] >= 0.9 * img.shape[1]:  # a plate crop: pad before turning
                img = cv2.copyMakeBorder(img, 30, 30, 30, 30, cv2.BORDER_REPLICATE)
            reads = reader.read(conditions[i][1](img))
            hits[i] += bool(reads) and reads[0].text == s.text
        n = max(len(samples), 1)
        print(f"{d.parent.name + '/' + d.name:<14} {n:>4} " + " ".join(f"{h / n:>8.1%}" for h in hits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
