"""Counting bench: line crossings and vehicle types against hand-counted truth, through the real
``edge replay`` path, several configurations in one run.

Each clip ``NAME.mp4`` with a truth file ``NAME.truth.json`` (format: ``../shared/data/README.md``)
is replayed with one counting line built from the truth's line (its ``in`` direction maps 1:1
onto ``LineConfig.in``). A detected crossing matches a true one of the same direction within
``MATCH_S`` seconds, one-to-one (the pairing with the smallest total time error). Printed per
clip and overall, per configuration:

- crossings found / missed / false, F1, count error per direction (detected - true),
- vehicle type accuracy over the found crossings: exact (car, van, truck, bus, motorbike,
  bicycle) and coarse (light = car/van, heavy = truck/bus, two-wheeler = motorbike/bicycle);
  ``unknown`` / no type counts as wrong,
- colour over the found crossings that have one in the truth: right (``COLOURS``: the published
  colours that fit the truth's word), ``unknown``, wrong (a confident wrong colour, the worst),
- CPU ms per source frame: process CPU time (every thread: decode, models, tracker) over the
  clip's decoded frames. The machine may be busy: compare CPU only within one run.

Clips: every ``count-*.mp4`` in the shared videos folder with a truth file, and the regression
clips in ``bench/data`` (``car-detection``: the demo's lot, 4 crossings in, out, in, out).

Usage: python bench/counting.py [--configs defaults,detect25fps,yolox] [--clips NAME,...] [--fast]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as `python3 bench/counting.py`
from edge.config import config_for_video  # noqa: E402
from edge.events.schema import Event  # noqa: E402
from edge.replay import replay  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGE_SHARED", ROOT.parent / "shared")).resolve()
VIDEOS = SHARED / "data" / "videos"
BENCH_DATA = Path(__file__).resolve().parent / "data"
MATCH_S = 1.0  # a detected crossing matches a true one of the same direction within this many seconds
COARSE = {
    "car": "light",
    "van": "light",
    "truck": "heavy",
    "bus": "heavy",
    "motorbike": "two-wheeler",
    "bicycle": "two-wheeler",
}
SYNONYMS = {"motorcycle": "motorbike", "bike": "bicycle"}  # the appliance's words -> the truth's
# the truth's colour words (by eye, shades included) -> the published colours that are right for
# them; the appliance's colours are the attributes model's (white gray yellow red green blue black)
COLOURS = {
    "white": {"white"},
    "silver": {"gray", "silver"},
    "grey": {"gray", "silver"},
    "dark grey": {"gray", "black"},
    "black": {"black"},
    "red": {"red"},
    "dark red": {"red"},
    "yellow": {"yellow"},
    "beige": {"white", "yellow"},
    "blue": {"blue"},
    "dark blue": {"blue", "black"},
    "green": {"green"},
    "dark green": {"green", "black"},
    "dark teal": {"green", "blue", "black"},
}

# named configurations: camera config overrides on top of the defaults (one config for every clip)
PRESETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "burst-off": {"detect": {"burst_fps": None}},
    "burst25": {"detect": {"burst_fps": 25.0}},
    "attr-types": {"detect": {"type_model": None}},
    "before": {"detect": {"burst_fps": None, "type_model": None}},
    "detect25fps": {"detect": {"fps": 25.0}},
    "yolox": {"detect": {"model": "yolox-nano-coco", "fps": 10.0}},
    "vd0200-fp16": {"detect": {"model": "vehicle-detection-0200"}},
    "nomotion": {"motion": {"enabled": False}},
}
DEFAULT_CONFIGS = "defaults,burst-off,detect25fps"


@dataclass
class Clip:
    """A video and its truth."""

    name: str
    video: Path
    truth: dict[str, Any]

    @property
    def frames(self) -> int:
        """Decoded source frames."""
        return int(self.truth["frames"])


@dataclass
class Score:
    """One clip under one configuration (or their sum)."""

    truth: int = 0
    found: int = 0
    false: int = 0
    err: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0})
    typed_exact: int = 0
    typed_coarse: int = 0
    unknown: int = 0
    colour_truth: int = 0  # found crossings whose truth has a colour
    colour_right: int = 0
    colour_unknown: int = 0
    cpu_s: float = 0.0
    frames: int = 0
    inferred: int = 0  # frames the detector ran on
    wrong: list[str] = field(default_factory=list)  # what went wrong, for the detail lines

    @property
    def missed(self) -> int:
        """True crossings with no match."""
        return self.truth - self.found

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (1.0 when there is nothing to find and nothing found)."""
        detected = self.found + self.false
        if self.truth == 0 and detected == 0:
            return 1.0
        return 2 * self.found / (self.truth + detected)

    def add(self, other: Score) -> None:
        """Sum ``other`` into this one (overall row): every count, the errors per direction."""
        for f in fields(self):
            value = getattr(other, f.name)
            if isinstance(value, (int, float)):
                setattr(self, f.name, getattr(self, f.name) + value)
        for k in self.err:
            self.err[k] += other.err[k]


def load_clips(names: list[str] | None = None) -> list[Clip]:
    """Shared ``count-*`` clips plus the bench's own regression clips, optionally only ``names``."""
    clips = []
    for truth_path in sorted(VIDEOS.glob("count-*.truth.json")) + sorted(BENCH_DATA.glob("*.truth.json")):
        name = truth_path.name.removesuffix(".truth.json")
        video = VIDEOS / f"{name}.mp4"
        if not video.is_file():
            raise SystemExit(f"no video {video} for truth {truth_path}")
        clips.append(Clip(name, video, json.loads(truth_path.read_text(encoding="utf-8"))))
    if names:
        unknown = set(names) - {c.name for c in clips}
        if unknown:
            raise SystemExit(f"unknown clip(s): {', '.join(sorted(unknown))}; have {', '.join(c.name for c in clips)}")
        clips = [c for c in clips if c.name in names]
    return clips


def camera_config(clip: Clip, overrides: dict[str, Any]) -> Any:
    """A one-camera app config: defaults + ``overrides`` + the truth's line as line ``count``."""
    line = clip.truth["line"]
    lines = {"count": {"points": line["points"], "in": line["in"]}}
    return config_for_video(str(clip.video), **overrides, lines=lines)


def run_clip(clip: Clip, overrides: dict[str, Any]) -> tuple[Score, list[Event]]:
    """Replay ``clip`` with ``overrides`` and score its line events against the truth."""
    app = camera_config(clip, overrides)
    events: list[Event] = []
    cpu0 = time.process_time()
    res = replay(str(clip.video), app, "camera", on_event=events.append, show_progress=False, start_time=0.0)
    cpu = time.process_time() - cpu0
    lines = [e for e in events if e.type == "line"]
    score = score_crossings(clip.truth["crossings"], lines)
    score.cpu_s, score.frames, score.inferred = cpu, clip.frames, res.frames_inferred
    return score, lines


def norm_type(value: str | None) -> str:
    """The truth's vocabulary for a published type (``unknown`` for none)."""
    if not value:
        return "unknown"
    return SYNONYMS.get(value, value)


def score_crossings(truth: list[dict[str, Any]], found: list[Event]) -> Score:
    """Match ``found`` line events to ``truth`` crossings (same direction, within MATCH_S, one-to-one)."""
    s = Score(truth=len(truth))
    for d in ("in", "out"):
        s.err[d] = sum(e.attrs.get("dir") == d for e in found) - sum(c["dir"] == d for c in truth)
    matched_found: set[int] = set()
    matched_truth: set[int] = set()
    for d in ("in", "out"):
        ti = [i for i, c in enumerate(truth) if c["dir"] == d]
        fi = [j for j, e in enumerate(found) if e.attrs.get("dir") == d]
        if not ti or not fi:
            continue
        cost = np.array([[abs(float(truth[i]["t"]) - float(found[j].pos or 0.0)) for j in fi] for i in ti])
        big = cost > MATCH_S
        rows, cols = linear_sum_assignment(np.where(big, 1e6, cost))
        for r, c in zip(rows, cols):
            if big[r, c]:
                continue
            tc, ev = truth[ti[r]], found[fi[c]]
            matched_found.add(fi[c])
            matched_truth.add(ti[r])
            s.found += 1
            got = norm_type(ev.attrs.get("type"))
            s.unknown += got == "unknown"
            s.typed_exact += got == tc["type"]
            s.typed_coarse += COARSE.get(got) == COARSE[tc["type"]]
            if got != tc["type"]:
                conf = ev.attrs.get("type_confidence")
                s.wrong.append(
                    f"type {tc['t']:.2f}s {tc['type']} -> {got}" + (f" ({conf})" if conf is not None else "")
                )
            _score_colour(s, tc, ev)
    for j, e in enumerate(found):
        if j not in matched_found:
            s.false += 1
            s.wrong.append(f"false {e.pos:.2f}s {e.attrs.get('dir')} {e.attrs.get('type')} track {e.track}")
    s.wrong += [f"missed {c['t']:.2f}s {c['dir']} {c['type']}" for i, c in enumerate(truth) if i not in matched_truth]
    return s


def _score_colour(s: Score, tc: dict[str, Any], ev: Event) -> None:
    """Count the colour of one found crossing (truth colour, if any, against the published one)."""
    want = tc.get("colour") or tc.get("color")
    if not want:
        return
    got = ev.attrs.get("color") or "unknown"
    s.colour_truth += 1
    if got == "unknown":
        s.colour_unknown += 1
    elif got in COLOURS.get(want, {want}):
        s.colour_right += 1
    else:
        s.wrong.append(f"colour {tc['t']:.2f}s {want} -> {got} ({ev.attrs.get('color_confidence')})")


def row(name: str, s: Score) -> str:
    """One table row."""
    found = max(s.found, 1)
    cpu = 1000 * s.cpu_s / max(s.frames, 1)
    return (
        f"| {name} | {s.found}/{s.truth} | {s.missed} | {s.false} | {s.f1:.3f} | {s.err['in']:+d} / {s.err['out']:+d} "
        f"| {s.typed_exact / found:.0%} | {s.typed_coarse / found:.0%} | {s.unknown} "
        f"| {s.colour_right}/{s.colour_truth} ({s.colour_unknown} unknown) "
        f"| {cpu:.1f} | {s.inferred / max(s.frames, 1):.2f} |"
    )


HEADER = (
    "| clip | found | missed | false | F1 | count err in/out | type exact | type coarse | type unknown "
    "| colour right | CPU ms/frame | detector runs/frame |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def run(
    configs: list[str], clips: list[Clip], progress: Callable[[str], None] | None = None
) -> dict[str, dict[str, Score]]:
    """Scores per configuration per clip (plus ``overall``), in the given order."""
    results: dict[str, dict[str, Score]] = {}
    total = len(configs) * len(clips)
    n = 0
    for cfg in configs:
        per: dict[str, Score] = {}
        overall = Score()
        for clip in clips:
            n += 1
            if progress:
                progress(f"[{n}/{total}] {cfg}: {clip.name}")
            s, _ = run_clip(clip, PRESETS[cfg])
            per[clip.name] = s
            # the regression clips check exact behaviour; they are not part of the road score
            if clip.name.startswith("count-"):
                overall.add(s)
        per["overall"] = overall
        results[cfg] = per
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"comma-separated presets of: {', '.join(PRESETS)}")
    ap.add_argument("--clips", default="", help="comma-separated clip names (default: all)")
    ap.add_argument("--fast", action="store_true", help="the defaults only (no alternative columns)")
    ap.add_argument("--details", action="store_true", help="list every miss, false crossing and wrong type")
    args = ap.parse_args()
    configs = ["defaults"] if args.fast else [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in configs if c not in PRESETS]
    if bad:
        print(f"error: unknown config(s) {', '.join(bad)}; presets: {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    clips = load_clips([c for c in args.clips.split(",") if c] or None)
    results = run(configs, clips, lambda m: print(m, file=sys.stderr, flush=True))
    for cfg, per in results.items():
        print(f"\n### {cfg} {json.dumps(PRESETS[cfg]) if PRESETS[cfg] else ''}\n")
        print(HEADER)
        for name, s in per.items():
            print(row(f"**{name}**" if name == "overall" else name, s))
        if args.details:
            for name, s in per.items():
                for w in s.wrong:
                    print(f"  {name}: {w}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
