"""Licence-plate benchmark on OpenALPR-format folders (``NAME.jpg`` + ``NAME.txt``).

Usage: ``python bench/plates.py DIR [DIR ...] [--regions br,eu] [--own-region] [--ocr A,B] [--failures]
[--old-decoder] [--frames N]``, or ``edge plates bench DIR [DIR ...] [--regions br,eu]`` (installed
package; this module is the benchmark, ``bench/plates.py`` a wrapper of it).

Per folder, per reader (``--ocr``: the default slot reader and the current PP-OCRv4 one, both
measured in the same run so latency ratios are meaningful on a loaded machine) and per region
setting (always "none"; ``--regions`` if given, applied identically to every folder;
``--own-region``: each folder with its own name as region code, e.g. ``eu`` and ``br``) it
prints:

- recall: share of images where a returned plate's axis-aligned box (around its quad) has
  IoU >= 0.3 with the labelled box;
- exact: top-1 text of the most confident plate equals the label (both normalised);
- exact O=0: the same with O and 0 treated as one character (kept for OpenALPR sets whose labels use O for a
  zero; the shared EU set's seven such labels were corrected on 2026-12-07, see ../shared/data/README.md);
- CER: character error rate, total edit distance / total label length (no read = all wrong);
- the same for the untuned baseline (top YuNet box + PP-OCRv4 greedy), measured in the same run;
- median and p95 latency of ``PlateReader.read`` on the whole image (detect + rectify + read),
  one image at a time, after a warm-up; the readers of one setting read each image in turn, so
  load changes on a shared machine hit them alike (compare their ratio, not absolute times);
- the wrong reads grouped by cause: no plate found, wrong region chosen (the top plate is not
  the labelled one), O/0 only (the label and the read differ only in O vs 0: a reader's O/0 slip, or a
  label that uses O for a digit zero), character confusion (same length), missing/extra character.
- for a folder named after a region (``eu``, ``br``): the labels that fit none of that region's
  formats while exactly one O/0 variant does (on the corrected EU set only ``eu9`` ``W053011``;
  before the correction also ``OYO9FEU`` for the UK ``OY09FEU``), found by the formats alone,
  and every reader's exact score against those corrected labels, beside the strict one.

``--old-decoder`` adds the previous slot decoder (``PlateReader(decoder="legacy")``: no format
prior without a region, the old ``us`` formats, no region alphabets, no zoomed detector pass, no
frame/slogan factors) as one more reader of the same run, so old and new are compared on the same
load. ``--frames N`` also replays every photo as N frames of a car coming closer (the photo
shrunk to 45-100%, shifted a few pixels, brightness, blur and JPEG quality varied per frame,
seeded) and compares one frame's read with the per-track vote of ``PlateConsensus`` over them.

Labels are only used for scoring, never by the pipeline.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from edge.plates.config import PlatesConfig
from edge.plates.consensus import PlateConsensus
from edge.plates.formats import REGION_FORMATS, REGION_GROUPS, compile_formats, normalize_plate
from edge.plates.geometry import box_iou, quad_to_box
from edge.plates.lists import edit_distance
from edge.plates.read_lines import CtcReader
from edge.plates.reader import PlateReader
from edge.plates.rectify import warp_quad

IOU_MIN = 0.3


@dataclass
class Sample:
    """One labelled image."""

    image: Path
    box: np.ndarray  # xyxy pixels
    text: str


def load_folder(folder: Path) -> list[Sample]:
    """OpenALPR annotations: ``NAME.jpg<TAB>x<TAB>y<TAB>w<TAB>h<TAB>PLATE`` per ``NAME.txt``."""
    samples = []
    for txt in sorted(folder.glob("*.txt")):
        parts = txt.read_text(encoding="utf-8").strip().split("\t")
        if len(parts) < 6:
            continue
        x, y, w, h = (float(v) for v in parts[1:5])
        samples.append(Sample(folder / parts[0], np.array([x, y, x + w, y + h]), normalize_plate(parts[5])))
    return samples


def _imread(path: Path) -> np.ndarray:
    img = cv2.imread(str(path))
    if img is None:
        raise SystemExit(f"cannot read image {path}")
    return img


@dataclass
class Read:
    """What the scorer needs of one plate read."""

    text: str
    corners: np.ndarray
    cands: list[tuple[str, float]]


def pipeline_reads(reader: PlateReader) -> Callable[[np.ndarray], list[Read]]:
    """The full plate stage."""
    return lambda img: [Read(r.text, r.corners, r.texts()) for r in reader.read(img)]


def baseline_reads(reader: PlateReader) -> Callable[[np.ndarray], list[Read]]:
    """The untuned baseline from the model mirror's README, measured in the same run: the
    top LPD-YuNet box, warped, read by PP-OCRv4 with greedy CTC; no refinement or formats.
    ``reader`` must be a PP-OCRv4 one."""

    ctc = reader.recognizer
    if not isinstance(ctc, CtcReader):
        raise ValueError(f"the baseline needs a PP-OCRv4 reader, not {type(ctc).__name__}")

    def read(img: np.ndarray) -> list[Read]:
        quads = reader.detector.detect(img, 0.02, tiles=False, max_plates=1)
        if not quads:
            return []
        crop = warp_quad(img, quads[0].corners)
        text = normalize_plate(ctc.model.recognize([crop])[0].greedy()[0])
        return [Read(text, quads[0].corners, [(text, 1.0)])]

    return read


def format_breaking_labels(samples: list[Sample], region: str) -> dict[str, str]:
    """Labels that fit none of ``region``'s plate formats while exactly one O/0 variant of them
    does (``OYO9FEU`` where UK plates have two digits after two letters: ``OY09FEU``): image
    stem -> that variant. Found by the formats alone, never by a reader's output; reported beside the strict
    score, which still counts them as labelled."""
    formats = compile_formats([region])
    out = {}
    for s in samples:
        if any(f.match(s.text) for f in formats):
            continue
        spots = [i for i, ch in enumerate(s.text) if ch in "O0"]
        fits = set()
        for bits in itertools.product("O0", repeat=len(spots)):
            text = list(s.text)
            for i, ch in zip(spots, bits):
                text[i] = ch
            if any(f.match("".join(text)) for f in formats):
                fits.add("".join(text))
        if len(fits) == 1:
            out[s.image.stem] = fits.pop()
    return out


CAUSES = ("no plate found", "wrong region chosen", "O/0 only", "character confusion", "missing/extra character")


def failure_cause(reads: list[Read], sample: Sample) -> str:
    """Why the top read is not the label (one of ``CAUSES``)."""
    if not reads:
        return CAUSES[0]
    top = reads[0]
    if box_iou(quad_to_box(top.corners), sample.box) < IOU_MIN:
        return CAUSES[1]
    if top.text.replace("O", "0") == sample.text.replace("O", "0"):
        return CAUSES[2]
    return CAUSES[3] if len(top.text) == len(sample.text) else CAUSES[4]


def run(
    modes: list[tuple[str, Callable[[np.ndarray], list[Read]]]],
    samples: list[Sample],
    desc: str,
    failures: bool,
    corrected: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Score one folder with several readers, interleaved image by image (each image is read by
    every reader in turn), so a load change on a shared machine hits all readers alike and
    their latency ratios stay meaningful."""
    for s in samples[:3]:  # warm-up: first calls allocate
        img = _imread(s.image)
        for _, read in modes:
            read(img)
    acc: dict[str, dict[str, Any]] = {
        name: {"hits": 0, "exact": 0, "exact_fixed": 0, "exact_o0": 0, "dist": 0, "times": [], "cpu": [], "fails": []}
        for name, _ in modes
    }
    causes: dict[str, dict[str, list[str]]] = {name: {c: [] for c in CAUSES} for name, _ in modes}
    chars = 0
    for s in tqdm(samples, desc=desc, leave=False, file=sys.stderr):
        img = _imread(s.image)
        chars += len(s.text)
        for name, read in modes:
            a = acc[name]
            t0, c0 = time.perf_counter(), time.process_time()
            reads = read(img)
            a["times"].append(time.perf_counter() - t0)
            a["cpu"].append(time.process_time() - c0)
            text = reads[0].text if reads else ""
            a["hits"] += any(box_iou(quad_to_box(r.corners), s.box) >= IOU_MIN for r in reads)
            a["exact"] += text == s.text
            a["exact_fixed"] += text == (corrected or {}).get(s.image.stem, s.text)
            a["exact_o0"] += text.replace("O", "0") == s.text.replace("O", "0")
            a["dist"] += edit_distance(text, s.text)
            if text != s.text:
                causes[name][failure_cause(reads, s)].append(f"{s.image.stem}:{s.text}>{text or '-'}")
                if failures and name != "baseline":
                    cands = reads[0].cands if reads else []
                    print(
                        f"  [{name}] {s.image.name}: label {s.text} read {text or '-'} "
                        f"{[(t, round(c, 2)) for t, c in cands]}",
                        flush=True,
                    )
    n = max(len(samples), 1)
    out = {}
    for name, a in acc.items():
        ms = np.array(a["times"]) * 1000
        out[name] = {
            "n": len(samples),
            "recall": a["hits"] / n,
            "exact": a["exact"] / n,
            "exact_o0": a["exact_o0"] / n,
            "exact_fixed": a["exact_fixed"] / n,
            "cer": a["dist"] / max(chars, 1),
            "median_ms": float(np.median(ms)) if len(ms) else 0.0,
            "p95_ms": float(np.percentile(ms, 95)) if len(ms) else 0.0,
            "cpu_ms": float(np.median(a["cpu"])) * 1000 if a["cpu"] else 0.0,
            "causes": causes[name],
        }
    return out


def replay_frames(img: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """``img`` as ``n`` frames of a vehicle coming closer: shrunk from 45% to 100% of its size,
    shifted by up to 4 px, with brightness x0.8-1.2, a Gaussian blur of sigma 0-1.2 and JPEG
    quality 50-90 varied per frame (seeded: the same frames every run)."""
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    frames: list[np.ndarray] = []
    for k in range(n):
        s = 0.45 + 0.55 * k / max(n - 1, 1)
        f = cv2.resize(img, (max(8, int(w * s)), max(8, int(h * s))), interpolation=cv2.INTER_AREA)
        dx, dy = (int(v) for v in rng.integers(0, 5, 2))
        f = f[dy:, dx:]
        f = np.clip(f.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
        sigma = float(rng.uniform(0.0, 1.2))
        if sigma > 0.3:
            f = cv2.GaussianBlur(f, (0, 0), sigma)
        ok, buf = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 91))])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        frames.append(decoded if decoded is not None else f)
    return frames


def consensus_run(reader: PlateReader, samples: list[Sample], n: int, desc: str) -> dict[str, float]:
    """Replay each photo as ``n`` frames (``replay_frames``) through ``reader`` and a
    ``PlateConsensus`` per photo (one track): exact share of single frames (all, and the last
    = closest one) and of the vote after all frames."""
    single = last = voted = 0
    for i, s in enumerate(tqdm(samples, desc=desc, leave=False, file=sys.stderr)):
        cons = PlateConsensus(min_confidence=0.0)
        texts = []
        for k, frame in enumerate(replay_frames(_imread(s.image), n, seed=i)):
            reads = reader.read(frame)
            texts.append(reads[0].text if reads else "")
            cons.add(0, reads[0] if reads else None, float(k))
        result = cons.current(0)
        single += sum(t == s.text for t in texts)
        last += texts[-1] == s.text
        voted += result is not None and result.text == s.text
    m = max(len(samples), 1)
    return {"frames": single / (m * n), "last": last / m, "vote": voted / m}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--regions", default="", help="comma-separated region codes or regexes, used for every folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backend", choices=["onnx", "openvino"], default=None)
    ap.add_argument("--precision", default="auto", help="OpenVINO precision: auto (device's fastest) or f32")
    ap.add_argument("--limit", type=int, default=0, help="first N images per folder (0 = all)")
    ap.add_argument("--failures", action="store_true", help="print every wrong read with its candidates")
    ap.add_argument("--causes", action="store_true", help="list the wrong reads under each cause")
    ap.add_argument(
        "--ocr",
        default=f"{PlatesConfig().ocr_model},ppocr-v4",
        help="comma-separated reader models to compare in the same run (first = the one under test)",
    )
    ap.add_argument(
        "--own-region", action="store_true", help="also run each folder with its own name as region (eu, br, us ...)"
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip the untuned baseline")
    ap.add_argument(
        "--old-decoder", action="store_true", help="also run the previous slot decoder (legacy) in the same run"
    )
    ap.add_argument("--frames", type=int, default=0, help="also replay each photo as N frames and vote (consensus)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    # each setting: folder -> regions ("own": the folder's name, when it is a region code)
    settings: list[Callable[[Path], list[str]]] = [lambda d: []]
    if args.regions:
        fixed = [r for r in args.regions.split(",") if r]
        settings.append(lambda d: fixed)
    if args.own_region:
        settings.append(lambda d: [d.name] if d.name in REGION_FORMATS or d.name in REGION_GROUPS else [])
    models = list(dict.fromkeys(m for m in args.ocr.split(",") if m))
    if args.old_decoder and models[0] == PlatesConfig().ocr_model:
        models.insert(1, OLD)  # the slot reader with the previous decoder, right after the new one
    readers: dict[tuple[str, tuple[str, ...]], PlateReader] = {}

    def reader_for(model: str, regions: list[str]) -> PlateReader:
        key = (model, tuple(regions))
        if key not in readers:
            legacy = model == OLD
            cfg = PlatesConfig(regions=regions, backend=args.backend, ocr_model=_real(model))
            decoder = "legacy" if legacy else "constrained"
            readers[key] = PlateReader(cfg, threads=args.threads, precision=args.precision, decoder=decoder)
        return readers[key]

    def setting_name(regions: list[str]) -> str:
        return ",".join(regions) or "none"

    # a folder is shown by its name (a region code), with its parent's when two share a name
    names = [d.name for d in args.dirs]
    shown = {d: f"{d.parent.name}/{d.name}" if names.count(d.name) > 1 else d.name for d in args.dirs}
    rows = []
    label_checks: dict[str, dict[str, str]] = {}  # folder -> format-breaking labels (stem -> O/0 fix)
    votes: list[tuple[str, str, dict[str, float]]] = []  # --frames: folder, reader:regions, shares
    for si, setting in enumerate(settings):
        for d in args.dirs:
            regions = setting(d)
            if si and not regions:
                continue
            modes = []
            paddle = next((reader_for(m, []) for m in models if m == "ppocr-v4"), None)
            if si == 0 and paddle is not None and not args.no_baseline:
                modes.append(("baseline", baseline_reads(paddle)))
            for m in models:
                modes.append((f"{_short(m)}:{','.join(regions) or 'none'}", pipeline_reads(reader_for(m, regions))))
            samples = load_folder(d)
            if args.limit:
                samples = samples[: args.limit]
            folder = shown[d]
            if folder not in label_checks:
                own = d.name in REGION_FORMATS or d.name in REGION_GROUPS
                label_checks[folder] = format_breaking_labels(samples, d.name) if own else {}
            results = run(modes, samples, f"{folder} [{setting_name(regions)}]", args.failures, label_checks[folder])
            rows += [(folder, name, results[name]) for name, _ in modes]
            if args.frames:
                for m in models[:2] if models[1:2] == [OLD] else models[:1]:
                    desc = f"{folder} [{setting_name(regions)}] {_short(m)} x{args.frames} frames"
                    votes.append(
                        (
                            folder,
                            f"{_short(m)}:{setting_name(regions)}",
                            consensus_run(reader_for(m, regions), samples, args.frames, desc),
                        )
                    )
    base = {folder: r for folder, name, r in rows if name == "baseline"}
    first = _short(models[0])

    def line(folder: str, name: str, r: dict[str, Any]) -> str:
        b = base.get(folder)
        vs = f"  {r['exact'] / b['exact']:.2f}x baseline exact" if b and name != "baseline" and b["exact"] else ""
        return (
            f"{folder:<12} {name[:24]:<24} {r['n']:>4} {r['recall']:>7.1%} {r['exact']:>7.1%} "
            f"{r['exact_o0']:>9.1%} {r['cer']:>6.3f} {r['median_ms']:>7.1f} {r['p95_ms']:>7.1f} {r['cpu_ms']:>7.1f}{vs}"
        )

    head = (
        f"{'regions':<24} {'n':>4} {'recall':>7} {'exact':>7} {'exactO=0':>9} {'CER':>6} "
        f"{'med ms':>7} {'p95 ms':>7} {'cpu ms':>7}"
    )
    # main table (rows start with the folder name): the reader under test and the baseline
    print(f"\nreader {models[0]}\n{'folder':<12} {head}")
    for folder, name, r in rows:
        if name == "baseline" or name.startswith(first + ":"):
            print(line(folder, name.split(":")[-1], r))
    for m in models[1:]:  # the other readers of the same run, rows indented
        print(f"\nsame run, reader {m}\n  {'folder':<12} {head}")
        for folder, name, r in rows:
            if name.startswith(_short(m) + ":"):
                print("  " + line(folder, name.split(":")[-1], r))
    print(
        f"(recall: returned plate box IoU >= {IOU_MIN} with the label; exact: top-1 text of the most "
        "confident plate; latency: whole read() per image, single image, after warm-up; cpu ms: median "
        "process CPU time of a read, all threads, less sensitive to other processes' load)"
    )
    if len(models) > 1:  # latency ratios, meaningful even on a loaded machine
        print("\nlatency ratio (median, same run):")
        for folder, name, r in rows:
            if name.startswith(first + ":"):
                for f2, n2, r2 in rows:
                    if f2 == folder and n2 != name and n2.split(":")[-1] == name.split(":")[-1]:
                        print(
                            f"  {folder} {name}: {r['median_ms'] / r2['median_ms']:.2f}x of {n2} "
                            f"(process CPU time: {r['cpu_ms'] / max(r2['cpu_ms'], 1e-9):.2f}x)"
                        )
    for folder, fixes in label_checks.items():
        if not fixes:
            continue
        listed = " ".join(f"{stem}:{label}" for stem, label in sorted(fixes.items()))
        print(f"\n{folder}: {len(fixes)} labels fit no {folder} format, one O/0 variant does: {listed}")
        scores = ", ".join(f"{name} {r['exact_fixed']:.1%}" for f2, name, r in rows if f2 == folder)
        print(f"  exact with those labels corrected (strict exact above counts them as labelled): {scores}")
    if votes:
        print(f"\nreplayed as {args.frames} frames per photo (exact: mean over single frames / closest frame / vote):")
        for folder, name, v in votes:
            print(f"  {folder:<6} {name:<16} {v['frames']:>6.1%} {v['last']:>6.1%} {v['vote']:>6.1%}")
    print("\nwrong reads by cause:")
    for folder, name, r in rows:
        if name == "baseline":
            continue
        counts = ", ".join(f"{c} {len(v)}" for c, v in r["causes"].items() if v)
        print(f"  {folder} [{name}]: {counts or 'none'}")
        if args.causes:
            for c, v in r["causes"].items():
                if v:
                    print(f"    {c}: {' '.join(v)}")
    return 0


OLD = "cct-xs-v1-global-plate-ocr@legacy"  # the slot reader with the previous decoder (--old-decoder)


def _real(model: str) -> str:
    return model.split("@")[0]


def _short(model: str) -> str:
    return {
        OLD: "cct-old",
        "cct-xs-v1-global-plate-ocr": "cct",
        "ppocr-v4": "ppocr",
        "license-plate-recognition-barrier-0001": "lprnet",
    }.get(model, model)


if __name__ == "__main__":
    raise SystemExit(main())
