"""Plate sets beyond ``../shared/data/openalpr``, built from a public package's photos.

``bench/data/plates-vn.json`` labels Vietnamese plates in the photos of the ``litealpr`` source
package on PyPI (AGPL-3.0): real two-line plates (motorbikes, cars, a truck) in street scenes and
crops, and one-line car plates. Nothing of it is in this repository: the package is downloaded
once with pip (checked against its sha256) and the labelled plates are written as OpenALPR-format
folders the plate bench reads::

    python bench/plate_sets.py --out /tmp/plate-sets
    python bench/plates.py /tmp/plate-sets/two-line/vn /tmp/plate-sets/one-line/vn --own-region

A scene plate is written as a window around it of about a vehicle's size (the appliance reads
plates in vehicle crops), a crop or a one-car frame as it is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np

SPEC = Path(__file__).resolve().parent / "data" / "plates-vn.json"
CACHE = Path.home() / ".cache" / "edge" / "plate-sets"
REGION = "vn"  # folder name = region code, so ``--own-region`` runs the set with its formats
MIN_WINDOW = 160  # px on the short side of a scene window (the reader's zoom-pass size)


def fetch_package(spec: dict, cache: Path = CACHE) -> Path:
    """The source package of ``spec["source"]`` in ``cache``, downloaded with pip if missing;
    a file whose sha256 differs is an error naming it."""
    src = spec["source"]
    path = cache / src["file"]
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"downloading {src['package']}=={src['version']} (source package, ~27 MB) ...", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
               "-d", str(cache), f"{src['package']}=={src['version']}"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not path.exists():
            why = done.stderr.strip()[-300:]
            raise RuntimeError(f"pip could not download {src['package']}=={src['version']}: {why}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != src["sha256"]:
        raise RuntimeError(f"{path}: sha256 {digest} is not the labelled package's {src['sha256']}")
    return path


def _label_box(tar: tarfile.TarFile, member: str, shape: tuple[int, ...]) -> list[float]:
    """xyxy box of the package's own YOLO polygon label (``images/X.png`` -> ``labels/X.txt``)."""
    name = member.replace("/images/", "/labels/").rsplit(".", 1)[0] + ".txt"
    f = tar.extractfile(f"{tar.getnames()[0].split('/')[0]}/{name}")
    assert f is not None
    pts = np.array(f.read().decode().split()[1:9], dtype=np.float64).reshape(4, 2) * [shape[1], shape[0]]
    return [*pts.min(axis=0), *pts.max(axis=0)]


def _window(box: list[float], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A vehicle-sized window around a plate box: 1.5 plate widths either side, 2.5 heights above
    and 1.5 below, at least ``MIN_WINDOW`` px on each side, inside the image."""

    def at_least(lo: float, hi: float) -> tuple[float, float]:
        grow = max(0.0, MIN_WINDOW - (hi - lo)) / 2
        return lo - grow, hi + grow

    x0, y0, x1, y1 = box
    pw, ph = x1 - x0, y1 - y0
    wx0, wx1 = at_least(x0 - 1.5 * pw, x1 + 1.5 * pw)
    wy0, wy1 = at_least(y0 - 2.5 * ph, y1 + 1.5 * ph)
    h, w = shape[:2]
    return max(0, int(wx0)), max(0, int(wy0)), min(w, int(np.ceil(wx1))), min(h, int(np.ceil(wy1)))


def build(out: Path, spec_path: Path = SPEC, cache: Path = CACHE) -> dict[str, Path]:
    """Write every set of ``spec_path`` as ``out/<set>/vn/NAME.png`` + ``NAME.txt`` (OpenALPR
    format); returns set name -> folder."""
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    package = fetch_package(spec, cache)
    folders = {}
    with tarfile.open(package) as tar:
        root = tar.getnames()[0].split("/")[0]
        for set_name, items in spec["sets"].items():
            folder = out / set_name / REGION
            folder.mkdir(parents=True, exist_ok=True)
            for item in items:
                f = tar.extractfile(f"{root}/{item['file']}")
                if f is None:
                    raise RuntimeError(f"{package}: no {item['file']}")
                img = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
                if img is None:
                    raise RuntimeError(f"{package}: {item['file']} is not an image")
                box = item["box"]
                if box is None:
                    box = [0, 0, img.shape[1], img.shape[0]]
                elif box == "label":
                    box = _label_box(tar, item["file"], img.shape)
                else:
                    wx0, wy0, wx1, wy1 = item.get("window") or _window(box, img.shape)
                    img = img[wy0:wy1, wx0:wx1]
                    box = [box[0] - wx0, box[1] - wy0, box[2] - wx0, box[3] - wy0]
                cv2.imwrite(str(folder / f"{item['name']}.png"), img)
                x0, y0, x1, y1 = (float(v) for v in box)
                line = f"{item['name']}.png\t{x0:.0f}\t{y0:.0f}\t{x1 - x0:.0f}\t{y1 - y0:.0f}\t{item['plate']}\n"
                (folder / f"{item['name']}.txt").write_text(line, encoding="utf-8")
            folders[set_name] = folder
            print(f"{set_name}: {len(items)} plates in {folder}", file=sys.stderr)
    return folders


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="folder to write the sets into")
    ap.add_argument("--cache", type=Path, default=CACHE, help="where the downloaded package is kept")
    ap.add_argument("--fetch", action="store_true", help="only download the package (what make test does)")
    args = ap.parse_args(argv)
    if args.fetch:
        spec = json.loads(SPEC.read_text(encoding="utf-8"))
        for attempt in range(3):  # a registry hiccup should not fail an install
            try:
                print(fetch_package(spec, args.cache))
                return 0
            except RuntimeError as e:
                print(f"try {attempt + 1} of 3: {e}", file=sys.stderr)
        return 1
    if args.out is None:
        ap.error("--out is required (or --fetch)")
    for folder in build(args.out, cache=args.cache).values():
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
