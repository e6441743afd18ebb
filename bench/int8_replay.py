"""INT8 vs FP16/FP32 defaults in the running appliance: tracks, types and colours from `edge replay`.

    EDGE_MODEL_MIRROR=../shared/models python3 bench/int8_replay.py [--fps 5 25] [VIDEO ...]

Replays each video (default: the shared videos) through the whole pipeline twice, once with the
registry's source models (vehicle-detection-0200 FP16, attributes FP32) and once with their INT8
builds (pulled, built on first pull: docs/convert.md), and compares what a user sees: the tracks
(matched by time overlap, >= 0.5), their start/end times, and each matched track's final vehicle
type and colour. Prints a table per video and rate, then the totals, and the replay time ratio
(whole pipeline, decode included, so it understates the models' own speed-up).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from edge.config import AppConfig
from edge.events.schema import Event
from edge.replay import replay

HERE = Path(__file__).resolve().parent
VIDEOS = HERE.parent.parent / "shared" / "data" / "videos"
PAIRS = {
    "source": ("vehicle-detection-0200", "vehicle-attributes-recognition-barrier-0039"),
    "int8": ("vehicle-detection-0200-openvino-int8", "vehicle-attributes-recognition-barrier-0039-openvino-int8"),
}


@dataclass
class Track:
    """One track as the events tell it: first and last time seen and its final attributes."""

    start: float = 0.0
    end: float = 0.0
    type: str | None = None
    color: str | None = None


@dataclass
class Run:
    tracks: dict[int, Track] = field(default_factory=dict)
    seconds: float = 0.0
    inferred: int = 0


def _run(video: Path, models: tuple[str, str], fps: float) -> Run:
    detector, attributes = models
    cam = {"url": str(video), "detect": {"fps": fps, "model": detector, "attributes_model": attributes}}
    app = AppConfig.model_validate({"cameras": {"cam": cam}})
    run = Run()

    def on_event(e: Event) -> None:
        if e.type != "track" or e.track is None:
            return
        t = run.tracks.setdefault(e.track, Track())
        if e.start is not None:  # replayed from time 0: the track's start time is its video position
            t.start = datetime.fromisoformat(e.start.replace("Z", "+00:00")).timestamp()
        t.end = float(e.pos or 0.0)
        t.type, t.color = e.attrs.get("type", t.type), e.attrs.get("color", t.color)

    res = replay(str(video), app, "cam", on_event=on_event, show_progress=False, start_time=0.0)
    run.seconds, run.inferred = res.seconds, res.frames_inferred
    return run


def _overlap(a: Track, b: Track) -> float:
    inter = max(0.0, min(a.end, b.end) - max(a.start, b.start))
    union = max(a.end, b.end) - min(a.start, b.start)
    return inter / union if union > 0 else float(a.start == b.start)


def _match(a: dict[int, Track], b: dict[int, Track]) -> list[tuple[Track, Track]]:
    pairs = sorted(((_overlap(x, y), i, j) for i, x in a.items() for j, y in b.items()), reverse=True)
    used_a: set[int] = set()
    used_b: set[int] = set()
    out = []
    for ov, i, j in pairs:
        if ov >= 0.5 and i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            out.append((a[i], b[j]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*", type=Path)
    ap.add_argument("--fps", type=float, nargs="+", default=[5.0, 25.0], help="detector rates to replay at")
    args = ap.parse_args()
    videos = args.videos or sorted(VIDEOS.glob("*.mp4"))
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}")
    tot = {"src": 0, "int8": 0, "matched": 0, "type": 0, "color": 0, "t_src": 0.0, "t_int8": 0.0}
    print(f"{'video':<34} {'fps':>4} {'tracks':>9} {'matched':>7} {'type':>5} {'colour':>6} "
          f"{'|d start|':>9} {'|d end|':>8} {'time':>6}")
    for video in videos:
        for fps in args.fps:
            src, q = _run(video, PAIRS["source"], fps), _run(video, PAIRS["int8"], fps)
            pairs = _match(src.tracks, q.tracks)
            same_type = sum(a.type == b.type for a, b in pairs)
            same_color = sum(a.color == b.color for a, b in pairs)
            ds = max((abs(a.start - b.start) for a, b in pairs), default=0.0)
            de = max((abs(a.end - b.end) for a, b in pairs), default=0.0)
            print(f"{video.name:<34} {fps:>4g} {len(src.tracks):>4}/{len(q.tracks):<4} {len(pairs):>7} "
                  f"{same_type:>5} {same_color:>6} {ds:>8.2f}s {de:>7.2f}s {src.seconds / max(q.seconds, 1e-9):>5.2f}x")
            for a, b in pairs:
                if (a.type, a.color) != (b.type, b.color):
                    print(f"    {a.start:6.1f}-{a.end:6.1f}s: source {a.type}/{a.color}, INT8 {b.type}/{b.color}")
            matched = {id(a) for a, _ in pairs} | {id(b) for _, b in pairs}
            for name, r in (("source", src), ("INT8", q)):
                for t in r.tracks.values():
                    if id(t) not in matched:
                        print(f"    {t.start:6.1f}-{t.end:6.1f}s: {name} only ({t.type}/{t.color})")
            for k, v in (("src", len(src.tracks)), ("int8", len(q.tracks)), ("matched", len(pairs)),
                         ("type", same_type), ("color", same_color), ("t_src", src.seconds), ("t_int8", q.seconds)):
                tot[k] += v
    print(f"total: source {tot['src']} tracks, INT8 {tot['int8']}, matched {tot['matched']}; "
          f"same type {tot['type']}/{tot['matched']}, same colour {tot['color']}/{tot['matched']}; "
          f"replay time source/INT8 {tot['t_src'] / max(tot['t_int8'], 1e-9):.2f}x")


if __name__ == "__main__":
    main()
