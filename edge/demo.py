"""``edge demo``: the whole pipeline on sample footage, its events printed in video order.

Two parts, each through the real models, event bus and rule engine (in memory):

1. **the lot** (``car-detection.mp4``, or ``--video``): a counting line across the middle; each
   car's start and end, its crossing and the visits the crossings open.
2. **the gate**: a 10 s scene made from one photo of the OpenALPR set (the view closes in on a
   car as it drives up to a closed gate, holds while it waits at the barrier, and pulls back as it
   reverses away) on a Sunday afternoon: its plate is read, the entry raises an ``after_hours``
   anomaly, waiting at the barrier a ``loitering`` one that resolves when it backs off.

Some events are known only after the fact (a crossing is judged once the track is confirmed, a
zone is left when the track ends), so lines wait in :class:`VideoOrder` until no earlier event
can still come, and are printed in the order of their position in the video.
"""

from __future__ import annotations

import heapq
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.config import AppConfig, CameraConfig, parse_config
from edge.errors import EdgeError
from edge.events.bus import Processor
from edge.events.schema import Event, epoch

if TYPE_CHECKING:
    from edge.inference.pool import ModelPool

# a horizontal counting line across the middle of the lot: crossings open visits
LOT_LINE = {"points": [[0.0, 0.5], [1.0, 0.5]], "in": "up", "road": "lot", "role": "both"}

GATE_PHOTO = Path("openalpr") / "eu" / "eu10.jpg"  # under the shared data folder; its plate is WA56660
GATE_START = datetime(2026, 12, 6, 14, 5, tzinfo=timezone.utc)  # a Sunday: the gate is closed
GATE_LINE_Y = 0.78  # the gate's line across the picture; below it, the zone in front of the barrier
GATE_CAMERA: dict[str, Any] = {
    "motion": {"enabled": False},  # the car stands still at the barrier: keep detecting it
    "tracker": {"update_interval": 1.0},  # loitering is judged on sightings: report them every second
    "plates": {},
    "lines": {
        "gate": {"points": [[0.0, GATE_LINE_Y], [1.0, GATE_LINE_Y]], "in": "down", "road": "gate", "role": "both"}
    },
    "zones": {"barrier": {"coordinates": [[0.0, GATE_LINE_Y], [1.0, GATE_LINE_Y], [1.0, 1.0], [0.0, 1.0]]}},
    # the road beyond the gate (other traffic in the photo's background) is not watched
    "masks": [[[0.0, 0.0], [1.0, 0.0], [1.0, 0.45], [0.0, 0.45]]],
}
GATE_RULES: list[dict[str, Any]] = [
    {"id": "after-hours", "kind": "after_hours", "open": {"mon-fri": "07:00-19:00"}},
    {"id": "waiting", "kind": "loitering", "zones": ["barrier"], "max_seconds": 3},
]
# the gate scene: 10 fps, the visible fraction of the photo per phase (approach, wait, back off)
SCENE_FPS = 10.0
SCENE_SIZE = (640, 512)  # the photo's aspect
SCENE_PLAN = ((1.0, 0.55, 30), (0.55, 0.55, 40), (0.55, 1.0, 30))
SCENE_CENTRE = (0.34, 0.49)  # the car, as fractions of the photo

# tracker.py: a tentative track survives min(max_age, 1 s) without a match
TENTATIVE_PATIENCE = 1.0


@dataclass
class Part:
    """One video the demo plays, with its config and what to tell the user first."""

    name: str
    video: str
    app: AppConfig
    start: float  # epoch s of the first frame (ts = start + pos)
    intro: str
    pool: ModelPool  # the part's models (edge.app.models.make_pool of its config)


def max_lateness(cam: CameraConfig) -> float:
    """Seconds of video by which an event can trail the frame that emits it.

    A track's start (and any crossing along its path so far) waits for confirmation (at most
    ``min_hits - 1`` gaps of tentative patience) and for a full view of the vehicle
    (``START_HOLD`` from first sight); a zone is left at the last sighting, known ``max_age``
    later. One detector step on top.
    """
    from edge.pipeline.describe import START_HOLD

    step = 1.0 / cam.detect.fps
    t = cam.tracker
    confirm = (t.min_hits - 1) * (min(t.max_age, TENTATIVE_PATIENCE) + step)
    return max(t.max_age, START_HOLD, confirm) + step


class VideoOrder:
    """Printed lines held until no earlier event can come, then written in video order.

    ``advance(pos)`` (the video has reached ``pos``) writes every held line at or before
    ``pos - lateness``; ``flush()`` writes the rest (end of the video). Equal positions keep
    their arrival order.
    """

    def __init__(self, lateness: float, write: Callable[[str], None]) -> None:
        self.lateness = lateness
        self.write = write
        self._held: list[tuple[float, int, str]] = []
        self._n = 0

    def add(self, pos: float, text: str) -> None:
        """Hold ``text`` for the event at ``pos`` s into the video."""
        self._n += 1
        heapq.heappush(self._held, (pos, self._n, text))

    def advance(self, pos: float) -> None:
        """The video has reached ``pos``: write what nothing can precede any more."""
        while self._held and self._held[0][0] <= pos - self.lateness:
            self.write(heapq.heappop(self._held)[2])

    def flush(self) -> None:
        """Write every held line (the video ended)."""
        while self._held:
            self.write(heapq.heappop(self._held)[2])


class VideoClock:
    """A bus processor that derives nothing: its tick (once per replayed frame) moves the
    :class:`VideoOrder` on."""

    def __init__(self, order: VideoOrder, start: float) -> None:
        self.order, self.start = order, start

    def process(self, event: Event) -> list[Event]:
        """Events pass by untouched."""
        return []

    def tick(self, now: float) -> list[Event]:
        """``now`` is a frame's capture time (epoch s)."""
        self.order.advance(now - self.start)
        return []


def mmss(seconds: float) -> str:
    """``75.4`` -> ``01:15``."""
    s = int(max(0.0, seconds))
    return f"{s // 60:02d}:{s % 60:02d}"


def event_pos(e: Event, start: float) -> float:
    """Seconds into the video: ``pos``, or from ``ts`` for events made on a tick (rules on time)."""
    return e.pos if e.pos is not None else epoch(e.ts) - start


class Describer:
    """One human line per event; remembers each track's colour and type for the events that
    do not carry them (plates, zones)."""

    def __init__(self) -> None:
        self._what: dict[tuple[str, int | None], str] = {}

    def __call__(self, e: Event, pos: float) -> str | None:
        """The line for ``e`` at ``pos`` s into the video, or None for track updates."""
        a = e.attrs
        head = f"{mmss(pos)}  {e.camera}  "
        if e.type == "anomaly":
            return f"{head}anomaly {str(a.get('anomaly'))[:8]}: {a.get('state')} {a.get('rule')}: {a.get('reason')}"
        if e.type == "count":  # the interval's crossings per line and direction
            per = [f"{ln} {d} {sum(t.values())}" for ln, ds in a.get("lines", {}).items() for d, t in ds.items()]
            return f"{head}count since {str(a.get('from'))[11:19]}: {', '.join(per) or 'no crossings'}"
        if e.type == "visit":
            roads = ", ".join(f"{way} via {a[k]}" for way, k in (("in", "road_in"), ("out", "road_out")) if a.get(k))
            detail = " ".join(str(x) for x in (a.get("status"), a.get("type"), a.get("plate"), roads) if x)
            return f"{head}visit {str(a.get('visit'))[:8]}: {detail}"
        what = " ".join(str(a[k]) for k in ("color", "type") if k in a)
        if "color" in a:
            self._what[(e.camera, e.track)] = what
        what = self._what.get((e.camera, e.track), what) or str(e.label)
        if e.type == "track" and e.phase == "update":
            return None  # periodic repeats of what start said
        step: str
        if e.type == "track":
            step = e.phase or ""
        elif e.type == "plate":
            step = f"plate {a.get('plate') or a.get('plate_hash')}" + (f" ({a['list']} list)" if a.get("list") else "")
        else:  # line, zone, state: its type, which line or zone, the direction, the phase
            step = " ".join(str(x) for x in (e.type, a.get("line") or a.get("zone"), a.get("dir"), e.phase) if x)
        zones = f" in {', '.join(e.zones)}" if e.zones and e.type == "track" else ""
        seconds = a.get("duration", a.get("dwell"))
        extra = f" after {seconds} s" if seconds is not None else ""
        first = ""
        if e.type == "track" and e.start is not None and e.pos is not None:
            first = f" (first seen at {mmss(e.pos - (epoch(e.ts) - epoch(e.start)))})"
        return f"{head}{what} #{e.track} {step}{zones}{extra}{first}"


def write_gate_scene(photo: Path, out: Path) -> Path:
    """The gate scene as an MP4: crops of ``photo`` closing in on the car, holding, pulling back."""
    import cv2
    import numpy as np

    img = cv2.imread(str(photo))
    if img is None:
        raise EdgeError(f"cannot read the demo photo {photo}")
    h, w = img.shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), SCENE_FPS, SCENE_SIZE)
    try:
        for first, last, frames in SCENE_PLAN:
            for i in range(frames):
                s = first + (last - first) * i / max(1, frames - 1)  # visible fraction of the photo
                x0 = int(np.clip(SCENE_CENTRE[0] * w - s * w / 2, 0, w - s * w))
                y0 = int(np.clip(SCENE_CENTRE[1] * h - s * h / 2, 0, h - s * h))
                crop = img[y0 : y0 + int(s * h), x0 : x0 + int(s * w)]
                writer.write(cv2.resize(crop, SCENE_SIZE, interpolation=cv2.INTER_AREA))
    finally:
        writer.release()
    return out


def _lot(video: str, camera: str) -> Part:
    """The lot part: ``video`` with a counting line across the middle, from now on."""
    import time

    from edge.app.models import make_pool

    app = parse_config({"cameras": {camera: {"url": video, "lines": {"middle": LOT_LINE}}}}, "<demo>")
    pool = make_pool(app)
    # the model that will run: a default the device cannot build falls back to its source
    detector, _ = pool.ensure_model(app.cameras[camera].detect.model)
    intro = f"{camera}: {video} through {detector.name}, a counting line across the middle"
    return Part(camera, video, app, time.time(), intro, pool)


def _gate(video: str, photo: Path) -> Part:
    from edge.app.models import make_pool

    app = parse_config({"cameras": {"gate": {"url": video, **GATE_CAMERA}}, "rules": {"rules": GATE_RULES}}, "<demo>")
    plates = app.cameras["gate"].plates
    assert plates is not None  # set in GATE_CAMERA
    intro = (
        f"gate: a car drives up to a closed gate on {GATE_START:%A %Y-%m-%d %H:%M} UTC, waits at the barrier and "
        f"backs away (a scene made from the photo {photo.name}); plates read by {plates.detector_model} + "
        f"{plates.ocr_model}; rules: after-hours (open mon-fri 07:00-19:00), waiting (over "
        f"{GATE_RULES[1]['max_seconds']} s in zone barrier)"
    )
    return Part("gate", video, app, GATE_START.timestamp(), intro, make_pool(app))


def play(part: Part, *, fast: bool, as_json: bool) -> str:
    """Replay one part, printing its events in video order; returns what it saw."""
    from edge.clock import ManualClock
    from edge.replay import replay
    from edge.rules import build_processors

    cam = part.app.cameras[part.name]
    order = VideoOrder(max_lateness(cam), lambda line: print(line, flush=True))
    describe = Describer()

    def show(e: Event) -> None:
        pos = event_pos(e, part.start)
        text = e.to_json() if as_json else describe(e, pos)
        if text is not None:
            order.add(pos, text)

    processors: list[Processor] = [
        *build_processors(part.app, ManualClock(), None, persist=False),
        VideoClock(order, part.start),
    ]
    print(part.intro, file=sys.stderr)
    try:
        res = replay(
            part.video,
            part.app,
            part.name,
            on_event=show,
            processors=processors,
            realtime=not fast,
            show_progress=False,
            start_time=part.start,
            pool=part.pool,
        )
    finally:
        order.flush()  # what was held when the video ended (or Ctrl-C)
    return f"{part.name} {res.tracks} vehicle{'s' * (res.tracks != 1)}, {res.events} events"


def run_demo(video: str | None, shared: Path, default_video: Path, *, fast: bool, as_json: bool) -> int:
    """``edge demo``: the lot clip (or ``video``), then the gate scene when no ``video`` is given."""
    path = video or str(default_video)
    if not Path(path).is_file():
        raise EdgeError(f"demo video not found: {path} (pass --video FILE)")
    lot = _lot(path, "camera" if video else "lot")
    print(
        "mm:ss = position in the video; lines come in video order, a few seconds after it (a track is announced "
        "once confirmed, its duration counts from first sight) (Ctrl-C to stop)",
        file=sys.stderr,
    )
    totals = [play(lot, fast=fast, as_json=as_json)]
    photo = shared / "data" / GATE_PHOTO
    if video is None and not photo.is_file():
        print(f"gate: skipped, its photo {photo} is not here", file=sys.stderr)
    elif video is None:
        with tempfile.TemporaryDirectory(prefix="edge-demo-") as tmp:
            scene = write_gate_scene(photo, Path(tmp) / "gate.mp4")
            totals.append(play(_gate(str(scene), photo), fast=fast, as_json=as_json))
    print(f"demo done: {'; '.join(totals)}", file=sys.stderr)
    return 0
