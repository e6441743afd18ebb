"""Plates in tilted photos: every labelled photo of OpenALPR-format folders read rotated by each
of a list of angles (a hand-held or rolled camera), exact reads per angle.

    python bench/plates_tilt.py ../shared/data/openalpr/eu ../shared/data/openalpr/br --angles -12,-8,-4,0,4,8,12

Positive angles turn the picture counter-clockwise (the plate's right end goes up). A photo
that is itself one plate crop is padded first, so turning it keeps the plate in the picture.
"""

from __future__ import annotations

import argparse
import sys
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


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--angles", default="-12,-8,-4,0,4,8,12", help="comma-separated degrees")
    ap.add_argument("--regions", default="", help="comma-separated region codes for the reader")
    ap.add_argument("--every", type=int, default=1, help="every Nth photo of each folder")
    args = ap.parse_args(argv)
    angles = [float(a) for a in args.angles.split(",") if a]
    reader = PlateReader(PlatesConfig(regions=[r for r in args.regions.split(",") if r]))
    print(f"{'folder':<14} {'n':>4} " + " ".join(f"{a:>+6.0f}" for a in angles) + "   all")
    for d in args.dirs:
        samples = load_folder(d)[:: args.every]
        hits = [0] * len(angles)
        todo = [(s, i) for s in samples for i in range(len(angles))]
        for s, i in tqdm(todo, desc=d.name, leave=False) if tqdm else todo:
            img = cv2.imread(str(s.image))
            if img is None:
                raise SystemExit(f"cannot read image {s.image}")
            if s.box[2] - s.box[0] >= 0.9 * img.shape[1]:  # a plate crop: pad before turning
                img = cv2.copyMakeBorder(img, 30, 30, 30, 30, cv2.BORDER_REPLICATE)
            reads = reader.read(rotated(img, angles[i]) if angles[i] else img)
            hits[i] += bool(reads) and reads[0].text == s.text
        n = len(samples)
        print(f"{d.parent.name + '/' + d.name:<14} {n:>4} " + " ".join(f"{h / n:>6.1%}" for h in hits)
              + f" {sum(hits) / (n * len(angles)):>6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
