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

# clip -> (crossings found at least, false crossings at most, coarse type right at least, exact at least)
FLOORS = {
    "count-highway-cctv": (21, 1, 0.90, 0.75),
    "count-road-oncoming": (26, 1, 0.90, 0.80),
    "count-street-overhead": (5, 1, 0.50, 0.40),
}


def _clip(name: str) -> Clip:
    clips = {c.name: c for c in load_clips()} if _videos_present() else {}
    need(name in clips, f"clip {name} with its truth")
    return clips[name]


def _videos_present() -> bool:
    from counting import VIDEOS

    return VIDEOS.is_dir()


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_road_clip_counts_and_types(name: str, model_env: Path) -> None:
    """Every crossing found (within the floor), none invented, types right at the coarse level
    (light / heavy / two-wheeler) and mostly exact; each line event says how sure its type is."""
    clip = _clip(name)
    score, lines = run_clip(clip, {})
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


def test_lot_clip_still_gives_its_four_crossings(model_env: Path) -> None:
    """The demo's lot: exactly in, out, in, out, all cars, each with its type confidence."""
    clip = _clip("car-detection")
    score, lines = run_clip(clip, {})
    assert [e.attrs["dir"] for e in lines] == ["in", "out", "in", "out"]
    assert score.found == 4 and score.false == 0, score.wrong
    assert [e.attrs["type"] for e in lines] == ["car"] * 4
    assert all(e.attrs["type_confidence"] >= 0.5 for e in lines)


def test_quiet_scene_keeps_the_base_detection_rate(model_env: Path, car_video: Path, tmp_path: Path) -> None:
    """A still scene with parked cars (one real frame of the lot held for 15 s): the burst rate
    never kicks in, so the detector runs no more often than with the burst off (quiet-scene
    detector CPU does not grow)."""
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

    def runs(burst: float | None) -> int:
        app = config_for_video(str(still), detect={"burst_fps": burst}, motion={"enabled": False})
        return replay(str(still), app, "camera", show_progress=False, start_time=0.0).frames_inferred

    with_burst, base = runs(10.0), runs(None)
    assert 74 <= with_burst <= base  # 15 s at 5 fps; the two frame grids may differ by the last frame


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
