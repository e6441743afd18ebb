"""Counting and typing on real traffic clips with hand-counted truth, through the real replay
path and the default configuration (``bench/counting.py`` does the scoring).

The floors are the level the defaults reach (docs/counting.md has the table), less one vehicle
of slack where a clip is borderline: a default that loses vehicles or calls cars trucks again
fails here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from edge.config import TrackerConfig
from edge.tracking import Tracker
from edge.types import Detections
from tests.conftest import need

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from counting import Clip, Score, load_clips, run_clip  # noqa: E402

from edge.annotate import track_label  # noqa: E402
from edge.pipeline.size_cue import SizeCue  # noqa: E402
from edge.pipeline.white_check import WhiteReference, adjusted_colours  # noqa: E402
from edge.tracking import Track  # noqa: E402
from edge.tracking.evidence import HEAVY, TypeEvidence  # noqa: E402
from edge.tracking.kalman import BoxKalman  # noqa: E402
from edge.tracking.state import TYPE_SOURCE_WEIGHTS  # noqa: E402

# clip -> (crossings found at least, false crossings at most, coarse type right at least, exact at least)
FLOORS = {
    "count-highway-cctv": (21, 1, 0.90, 0.81),
    "count-road-oncoming": (26, 1, 0.92, 0.85),
    "count-street-overhead": (5, 1, 0.80, 0.60),
}


def _clip(name: str) -> Clip:
    clips = {c.name: c for c in load_clips()} if _videos_present() else {}
    need(name in clips, f"clip {name} with its truth")
    return clips[name]


def _videos_present() -> bool:
    from counting import VIDEOS

    return VIDEOS.is_dir()


# the targets over the three road clips together (coarse, exact type of found crossings)
OVERALL = (0.95, 0.85)
_SCORES: dict[str, Score] = {}  # road clip scores of this session, reused by the overall test


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_road_clip_counts_and_types(name: str, model_env: Path) -> None:
    """Every crossing found (within the floor), none invented, types right at the coarse level
    (light / heavy / two-wheeler) and mostly exact; each line event says how sure its type is."""
    clip = _clip(name)
    score, lines = run_clip(clip, {})
    _SCORES[name] = score
    found, false, coarse, exact = FLOORS[name]
    detail = "; ".join(score.wrong)
    assert score.found >= found, f"{name}: found {score.found}/{score.truth} ({detail})"
    assert score.false <= false, f"{name}: {score.false} false crossings ({detail})"
    assert _share(score.typed_coarse, score) >= coarse, (
        f"{name}: coarse type {score.typed_coarse}/{score.found} ({detail})"
    )
    assert _share(score.typed_exact, score) >= exact, f"{name}: exact type {score.typed_exact}/{score.found} ({detail})"
    for e in lines:
        assert 0.0 <= e.attrs["type_confidence"] <= 1.0
        assert e.attrs["type"] != "unknown" or e.attrs["type_confidence"] < 0.5


def test_road_clips_together_reach_the_type_targets(model_env: Path) -> None:
    """Over all three road clips: coarse type >= 95% and exact >= 85% of found crossings (the
    school bus seen from above and the red pickup are among them)."""
    total = Score()
    for name in sorted(FLOORS):
        if name not in _SCORES:
            _SCORES[name] = run_clip(_clip(name), {})[0]
        total.add(_SCORES[name])
    detail = "; ".join(w for s in _SCORES.values() for w in s.wrong)
    assert _share(total.typed_coarse, total) >= OVERALL[0], f"coarse {total.typed_coarse}/{total.found} ({detail})"
    assert _share(total.typed_exact, total) >= OVERALL[1], f"exact {total.typed_exact}/{total.found} ({detail})"


def test_lot_clip_still_gives_its_four_crossings(model_env: Path) -> None:
    """The demo's lot: exactly in, out, in, out, all cars, each with its type confidence, and
    the colours white, silver (gray), red, white."""
    clip = _clip("car-detection")
    score, lines = run_clip(clip, {})
    assert [e.attrs["dir"] for e in lines] == ["in", "out", "in", "out"]
    assert score.found == 4 and score.false == 0, score.wrong
    assert [e.attrs["type"] for e in lines] == ["car"] * 4
    assert all(e.attrs["type_confidence"] >= 0.5 for e in lines)
    # the silver car (out at 15.8 s) is right or unknown, never white; the others keep theirs
    assert [e.attrs["color"] for e in lines] == ["white", "gray", "red", "white"]


def test_quiet_scene_keeps_the_base_detection_rate(model_env: Path, car_video: Path, tmp_path: Path) -> None:
    """A still scene with parked cars (one real frame of the lot held for 15 s): the burst rate
    never kicks in, so the detector runs no more often than with the burst off, and the reader
    decodes and converts no more frames either (quiet-scene CPU does not grow)."""
    import cv2

    from edge.config import config_for_video
    from edge.replay import replay

    cap = cv2.VideoCapture(str(car_video))
    ok, frame = cap.read()
    cap.release()
    assert ok
    still = tmp_path / "still.mp4"
    out = cv2.VideoWriter(str(still), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (frame.shape[1], frame.shape[0]))
    for _ in range(150):
        out.write(frame)
    out.release()

    def runs(burst: float | None) -> tuple[int, int]:
        app = config_for_video(str(still), detect={"burst_fps": burst}, motion={"enabled": False})
        res = replay(str(still), app, "camera", show_progress=False, start_time=0.0)
        return res.frames_inferred, res.frames

    (with_burst, delivered), (base, base_delivered) = runs(10.0), runs(None)
    assert 74 <= with_burst <= base  # 15 s at 5 fps; the two frame grids may differ by the last frame
    # nor does the reader's: it hands on frames at detect.fps, not burst_fps (150 frames)
    assert 74 <= delivered <= base_delivered


def _boxes(*boxes: tuple[float, float, float, float]) -> Detections:
    n = len(boxes)
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), [0.9] * n, [0] * n, ["vehicle"] * n)


def test_small_fast_vehicles_keep_their_tracks() -> None:
    """Two small cars side by side moving 1.25 of their lengths per 5 fps sample (no overlap
    with where they were): each keeps one track from the first sample on, no id swap."""
    tr = Tracker(TrackerConfig())
    ids: list[tuple[int, int]] = []
    for i in range(8):
        y = 0.9 - 0.05 * i
        out, _ = tr.update(_boxes((0.40, y - 0.04, 0.44, y), (0.46, y - 0.04, 0.50, y)), i * 0.2)
        assert out.tracker_id is not None
        ids.append((int(out.tracker_id[0]), int(out.tracker_id[1])))
    confirmed = [p for p in ids if min(p) > 0]
    assert len(confirmed) == 6 and set(confirmed) == {confirmed[0]} and confirmed[0][0] != confirmed[0][1]


def _share(n: int, s: Score) -> float:
    return n / s.found if s.found else 0.0


def test_a_source_that_runs_often_does_not_outvote_a_better_one() -> None:
    """The attributes model calls a pickup "car" on all its 8 crops; the one COCO view says
    truck 0.66 / car 0.23: the fused vote is truck (summed, the 8 crops would win)."""
    ev = TypeEvidence(TYPE_SOURCE_WEIGHTS)
    ev.add("coco", {"truck": 0.66, "car": 0.23})
    for _ in range(8):
        ev.add("attributes", {"car": 0.92, "truck": 0.05, "van": 0.03})
    votes = ev.votes()
    assert max(votes, key=lambda k: votes[k]) == "truck"
    assert votes["truck"] / sum(votes.values()) >= 0.5  # published, not unknown


def test_heavy_vote_goes_to_the_heavy_type_the_other_sources_prefer() -> None:
    """Size says only "heavy": it lands on truck or bus as the other evidence leans (truck on a tie)."""
    ev = TypeEvidence(TYPE_SOURCE_WEIGHTS)
    ev.add("attributes", {"car": 0.5, "bus": 0.3, "truck": 0.2})
    ev.add("size", {HEAVY: 1.0})
    assert max(ev.votes().items(), key=lambda kv: kv[1])[0] == "bus"
    ev = TypeEvidence(TYPE_SOURCE_WEIGHTS)
    ev.add("size", {HEAVY: 1.0})
    assert ev.votes() == {"truck": TYPE_SOURCE_WEIGHTS["size"]}


def _car(y: float, scale: float = 1.0) -> np.ndarray:
    """A car-sized box centred at height ``y`` on a road seen in perspective (bigger lower down)."""
    side = (0.05 + 0.2 * y) * scale
    return np.array([0.5 - side / 2, y - side / 2, 0.5 + side / 2, y + side / 2])


def test_size_cue_calls_a_box_several_cars_big_heavy_and_a_car_not() -> None:
    """Cars of five tracks at several heights fit the road's perspective; a bus there (2.5x the
    length and width of a car: 6x the area) is fully heavy, a car-sized box not at all, and
    with too few other tracks the cue says nothing."""
    cue = SizeCue()
    assert cue.heavy(99, _car(0.5)) is None
    for track, y in enumerate([0.3, 0.45, 0.6, 0.75, 0.9, 0.4, 0.7]):
        cue.observe(track % 5, _car(y, scale=1.0 + 0.05 * (track % 3)))
    assert cue.heavy(99, _car(0.55, scale=2.5)) == 1.0
    assert cue.heavy(99, _car(0.55)) == 0.0
    assert cue.heavy(99, _car(0.8, scale=1.3)) == 0.0  # a van: a bit bigger is not heavy


def test_annotation_label_shows_type_and_its_confidence() -> None:
    """The --annotate label of a track: id, colour, type and how sure the type is, as published."""
    box = np.array([0.1, 0.1, 0.3, 0.3])
    t = Track(BoxKalman(box), box, 0.9, 0.0, 0.0, id=7)
    t.vote("vehicle", 0.9)
    t.attr_votes = {"type": {"car": 0.82, "truck": 0.18}, "color": {"red": 1.0}}
    assert track_label(t) == "#7 red car 0.82"
    t.attr_votes["type"] = {"car": 0.4, "truck": 0.35, "bus": 0.25}
    assert track_label(t) == "#7 red unknown 0.40"
    t.attr_votes = {}
    assert track_label(t) == "#7 vehicle"


def test_white_vote_moves_to_gray_only_for_paint_less_even_than_the_cameras_whites() -> None:
    """The first white vehicle keeps the model's white (nothing to compare with); one whose paint
    is as even as the camera's whites stays white; one clearly less even (metallic silver) has
    its white vote moved to gray, in proportion to how far below the whites it lies."""
    ref = WhiteReference()
    assert ref.silver_share(1, 0.9) == 0.0
    ref.update(1, 0.92, white=True)
    ref.update(2, 0.88, white=True)
    assert ref.silver_share(3, 0.90) == 0.0
    assert ref.silver_share(3, 0.70) == 1.0
    assert 0.0 < ref.silver_share(3, 0.85) < 1.0
    ref.update(2, 0.88, white=False)  # no longer called white: not a reference
    assert ref.silver_share(1, 0.92) == 0.0  # its own value alone is no reference
    assert adjusted_colours({"white": 8.0, "gray": 0.5}, 1.0) == {"white": 0.0, "gray": 8.5}
    assert adjusted_colours({"red": 3.0}, 1.0) == {"red": 3.0}


class _Moving:
    """What the detection rate reads of a track: its last box (and prediction) and its speed."""

    def __init__(self, bottom: float, speed: float) -> None:
        self.last_det, self.speed = 0, speed
        self.last_box = self.box = np.array([0.45, bottom - 0.1, 0.55, bottom], np.float32)


@pytest.mark.parametrize(
    ("bottom", "speed", "bursts"),
    [
        (0.52, 0.1, True),  # 0.2 box sizes per base period, near the line: burst (the crossing is close)
        (0.90, 0.1, False),  # as slow, far from the line: the base rate tracks it
        (0.52, 0.02, False),  # near the line but creeping (a queue): no burst
        (0.90, 0.2, True),  # fast anywhere: burst
    ],
)
def test_the_detector_bursts_for_fast_tracks_and_for_slower_ones_near_a_line(
    bottom: float, speed: float, bursts: bool
) -> None:
    from edge.config import DetectConfig, LineConfig
    from edge.pipeline.rate import DetectionRate
    from edge.tracking.lines import LineCounter

    lines = LineCounter({"gate": LineConfig.model_validate({"points": [[0, 0.5], [1, 0.5]], "in": "up"})})
    rate = DetectionRate(DetectConfig(fps=5, burst_fps=10), lines)
    rate.ran(0.0)
    track = _Moving(bottom, speed)
    assert rate.due(0.1, [track]) is bursts  # a burst period after the last detector run
    assert rate.due(0.2, [track])  # a base period: always
