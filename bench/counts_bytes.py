"""Bytes per camera-week at each ``events.detail`` level, on the shared traffic clips.

Each ``count-*`` clip is replayed once through the real ``edge replay`` path (default config, the
truth's line as line ``count``, zones none) with the counts processor; the events each level
keeps (``edge.counts.detail``) are summed as MQTT messages: JSON payload + topic
(``edge/<device>/<camera>/events/<type>``) + 5 bytes of MQTT PUBLISH header. A week is the clip
looped: its per-second bytes x 604,800 for the per-vehicle events. At ``crossings`` the clip's
line events, looped for an hour, go through the device's batcher (edge.counts.batching): its
``crossings`` events (one a minute) x 168. Count events (``crossings`` and ``counts``): 672 of 15
minutes whose crossings are the clip's (scaled to 15 minutes, so each has every line/direction/type
the clip has).

Usage: python bench/counts_bytes.py [--clips NAME,...]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from counting import Clip, camera_config, load_clips  # noqa: E402

from edge.clock import ManualClock  # noqa: E402
from edge.counts.batching import Batcher  # noqa: E402
from edge.counts.detail import BATCHED, LEVELS, keeps  # noqa: E402
from edge.counts.processor import LATE  # noqa: E402
from edge.counts.tally import Tally  # noqa: E402
from edge.events.schema import Event, utc_iso  # noqa: E402
from edge.replay import replay  # noqa: E402
from edge.rules import build_processors  # noqa: E402

WEEK = 7 * 86400
INTERVAL = 900
MQTT_HEADER = 5


def message_bytes(e: Event, device: str = "edge-1") -> int:
    """One event as an MQTT message: payload + topic + fixed header."""
    topic = f"edge/{device}/{e.camera}/events/{e.type}"
    return len(e.to_bytes()) + len(topic) + MQTT_HEADER


def week_count_event(clip_s: float, lines: list[Event], device: str, camera: str) -> Event:
    """A 15-minute count event with the clip's crossings scaled to 15 minutes."""
    tally = Tally(0.0, float(INTERVAL), up=float(INTERVAL))
    scale = INTERVAL / clip_s
    for (line, d, kind), n in Counter(
        (e.attrs["line"], e.attrs["dir"], e.attrs.get("type") or "unknown") for e in lines
    ).items():
        for _ in range(round(n * scale)):
            tally.crossing(line, d, kind)
    return tally.event(device, camera).model_copy(update={"device": device, "seq": 123456})


def hour_of_batches(clip_s: float, lines: list[Event], device: str = "edge-1") -> tuple[list[Event], float]:
    """The ``crossings`` events of the clip's line events looped for an hour; (events, seconds covered)."""
    batcher = Batcher(device, {e.camera for e in lines}, LATE)
    loops = math.ceil(3600 / clip_s)
    out: list[Event] = []
    for k in range(loops):
        for e in lines:
            t = datetime.fromisoformat(e.ts.replace("Z", "+00:00")).timestamp() + k * clip_s
            out += batcher.add(e.model_copy(update={"ts": utc_iso(t)}), t)
            out += batcher.tick(t)
    out += batcher.close()
    return [b.model_copy(update={"device": device, "seq": 123456}) for b in out], loops * clip_s


def measure(clip: Clip) -> dict[str, tuple[float, float]]:
    """level -> (MB per camera-week, messages per camera-week)."""
    app = camera_config(clip, {})
    events: list[Event] = []
    procs = build_processors(app, ManualClock(), None, persist=False)
    replay(str(clip.video), app, "camera", on_event=events.append, processors=procs, show_progress=False, start_time=0)
    clip_s = float(clip.truth["duration_s"])
    loops = WEEK / clip_s
    out: dict[str, tuple[float, float]] = {}
    lines = [e for e in events if e.type == "line"]
    for level in LEVELS:
        kept = [e for e in events if keeps(level, e.type) and e.type not in ("count", "crossings")]
        size = sum(message_bytes(e) for e in kept) * loops
        n = len(kept) * loops
        if level == BATCHED:
            batches, covered = hour_of_batches(clip_s, lines)
            size += sum(message_bytes(b) for b in batches) * WEEK / covered
            n += len(batches) * WEEK / covered
        if keeps(level, "count"):
            size += message_bytes(week_count_event(clip_s, lines, "edge-1", "camera")) * (WEEK / INTERVAL)
            n += WEEK / INTERVAL
        out[level] = (size / 1e6, n)
    return out


def main() -> int:
    """Print one row per clip and level."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", help="comma-separated clip names (default: every count-* clip)")
    args = ap.parse_args()
    clips = [c for c in load_clips(args.clips.split(",") if args.clips else None) if c.name.startswith("count-")]
    print(f"{'clip':24} {'crossings/h':>11} {'level':>9} {'MB/cam-week':>12} {'msgs/cam-week':>14}")
    for clip in clips:
        rate = len(clip.truth["crossings"]) / float(clip.truth["duration_s"]) * 3600
        for level, (mb, n) in measure(clip).items():
            print(f"{clip.name:24} {rate:11.0f} {level:>9} {mb:12.2f} {n:14.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
