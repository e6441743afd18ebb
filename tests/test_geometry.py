"""Counting lines and zone occupancy on controlled paths: direction, hysteresis, line ends,
late confirmation, and the config checks for lines."""

from __future__ import annotations

import numpy as np
import pytest

from edge.config import LineConfig, ZoneConfig, config_for_video
from edge.errors import ConfigError
from edge.tracking import Track
from edge.tracking.kalman import BoxKalman
from edge.tracking.lines import LineCounter
from edge.tracking.zones import ZoneOccupancy

MID = LineConfig.model_validate({"points": [[0.1, 0.5], [0.9, 0.5]], "in": "up", "road": "A"})


def track(path: list[tuple[float, float]], tid: int = 1, dt: float = 0.2) -> Track:
    """A track whose bottom centre followed ``path`` (one point every ``dt`` s)."""
    box = np.array([0.4, 0.4, 0.6, 0.6], np.float32)
    t = Track(BoxKalman(box), box, 0.9, 0.0, 0.0, id=tid)
    t.state.trajectory = [(i * dt, x, y) for i, (x, y) in enumerate(path)]
    return t


def crossings(counter: LineCounter, t: Track) -> list[tuple[str, str, float]]:
    return [(c.line, c.dir, round(c.at, 3)) for c in counter.crossings(t)]


def test_moving_up_across_an_up_line_is_in_and_down_is_out() -> None:
    counter = LineCounter({"mid": MID})
    up = track([(0.5, y) for y in (0.9, 0.7, 0.55, 0.45, 0.3)])
    # crossed between the points at 0.4 s (y 0.55) and 0.6 s (y 0.45): interpolated 0.5 s
    assert crossings(counter, up) == [("mid", "in", 0.5)]
    down = track([(0.5, y) for y in (0.1, 0.3, 0.45, 0.6, 0.9)])
    assert crossings(counter, down) == [("mid", "out", 0.467)]


def test_jitter_on_the_line_never_flaps() -> None:
    counter = LineCounter({"mid": MID})
    # comes up from below, then sits on the line wobbling +-0.01 (within the hysteresis)
    wobble = [(0.5, y) for y in (0.8, 0.6, 0.51, 0.49, 0.505, 0.495, 0.51, 0.49, 0.505)]
    t = track(wobble)
    assert crossings(counter, t) == []
    t.state.trajectory += [(2.0, 0.5, 0.4)]  # then really drives on: one crossing
    assert [c[:2] for c in crossings(counter, t)] == [("mid", "in")]
    t.state.trajectory += [(2.2, 0.5, 0.49), (2.4, 0.5, 0.51), (2.6, 0.5, 0.45)]  # dips back, no more
    assert crossings(counter, t) == []
    t.state.trajectory += [(3.0, 0.5, 0.7)]  # reverses out for real: one out
    assert [c[:2] for c in crossings(counter, t)] == [("mid", "out")]


def test_paths_round_the_end_of_a_line_do_not_count() -> None:
    counter = LineCounter({"mid": MID})
    assert crossings(counter, track([(0.95, y) for y in (0.9, 0.6, 0.4, 0.1)])) == []
    assert [c[1] for c in crossings(counter, track([(0.85, y) for y in (0.9, 0.6, 0.4, 0.1)]))] == ["in"]


def test_the_whole_path_counts_even_when_judged_late() -> None:
    # the tracker confirms the car (and the pipeline judges its path) only after it passed the
    # line: the crossing is still found, at the time it happened
    counter = LineCounter({"mid": MID})
    t = track([(0.5, y) for y in (0.7, 0.6, 0.4, 0.3, 0.2)])
    assert crossings(counter, t) == [("mid", "in", 0.3)]
    assert crossings(counter, t) == []  # judged once


def test_diagonal_line_and_sideways_direction() -> None:
    diag = LineConfig.model_validate({"points": [[0.2, 0.2], [0.8, 0.8]], "in": "right"})
    counter = LineCounter({"d": diag})
    assert [c[1] for c in crossings(counter, track([(x, 0.5) for x in (0.2, 0.4, 0.6, 0.8)]))] == ["in"]
    assert [c[1] for c in crossings(counter, track([(0.5, y) for y in (0.2, 0.4, 0.6, 0.8)]))] == ["out"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ({"points": [[0.3, 0.5], [0.3, 0.5]], "in": "up"}, "must be distinct"),
        ({"points": [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0]], "in": "up"}, "exactly 2 points"),
        ({"points": [[0.0, 0.5], [1.0, 0.5]], "in": "left"}, "runs along the line"),
        ({"points": [[0.0, 0.5], [1.2, 0.5]], "in": "up"}, "less than or equal to 1"),
        ({"points": [[0.0, 0.5], [1.0, 0.5]], "in": "north"}, "'up', 'down', 'left' or 'right'"),
        ({"points": [[0.0, 0.5], [1.0, 0.5]], "in": "up", "role": "gate"}, "'entry', 'exit' or 'both'"),
    ],
)
def test_bad_lines_are_config_errors(line: dict, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        config_for_video("x.mp4", lines={"l": line})


def test_zone_occupancy_enter_leave_and_dwell() -> None:
    occ = ZoneOccupancy({"bay": ZoneConfig(coordinates=[(0, 0), (1, 0), (1, 1)], role="parking")})
    a, b = track([], tid=1), track([], tid=2)
    assert [(c.phase, c.occupancy) for c in occ.update(a, ["bay"], 10.0)] == [("start", 1)]
    assert [(c.phase, c.occupancy) for c in occ.update(b, ["bay"], 11.0)] == [("start", 2)]
    assert occ.update(a, ["bay"], 12.0) == []  # still inside: nothing
    left = occ.update(a, [], 15.5)
    assert [(c.phase, c.zone, c.occupancy, c.dwell) for c in left] == [("end", "bay", 1, 5.5)]
    assert [(c.phase, c.occupancy, c.dwell) for c in occ.leave_all(b, 20.0)] == [("end", 0, 9.0)]
    assert occ.count("bay") == 0
