"""Whole-frame classifier states: which class is on screen and for how long."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import config_for_video
from edge.pipeline import Pipeline
from edge.tracking.scene import SceneState
from edge.types import Frame


def test_scene_state_hysteresis_and_durations() -> None:
    s = SceneState(min_score=0.5, min_frames=2)
    seq = [("taxi", 0.9), ("taxi", 0.8), ("taxi", 0.9), ("empty", 0.9), ("taxi", 0.9), ("empty", 0.7), ("empty", 0.8)]
    changes = [c for i, (label, score) in enumerate(seq) for c in s.update(label, score, float(i))]
    # a one-frame blip of "empty" at t=3 does not end the taxi state
    assert [(c.phase, c.label, c.since, c.at) for c in changes] == [
        ("start", "taxi", 0.0, 0.0),
        ("end", "taxi", 0.0, 5.0),
        ("start", "empty", 5.0, 5.0),
    ]
    assert changes[1].duration == 5.0
    end = s.close(9.0)
    assert end[0].phase == "end" and end[0].duration == 4.0


def test_low_scores_and_unlisted_labels_are_the_none_state() -> None:
    s = SceneState(min_score=0.6, min_frames=1, labels=["taxi"])
    got = []
    for i, (label, score) in enumerate([("taxi", 0.5), ("bus", 0.99), ("taxi", 0.9), ("bus", 0.9)]):
        got += [(c.phase, c.label, c.since, c.at) for c in s.update(label, score, float(i))]
    got += [(c.phase, c.label, c.since, c.at) for c in s.close(5.0)]
    assert got == [
        ("start", "none", 0.0, 0.0),
        ("end", "none", 0.0, 2.0),
        ("start", "taxi", 2.0, 2.0),
        ("end", "taxi", 2.0, 3.0),
        ("start", "none", 3.0, 3.0),
        ("end", "none", 3.0, 5.0),
    ]


def test_states_tile_the_timeline_even_when_the_start_flickers() -> None:
    s = SceneState(min_score=0.5, min_frames=3)
    labels = ["a", "b", "a", "b", "b", "b", "b", "a", "b", "none?", "c", "c", "c"]
    changes = [c for i, lab in enumerate(labels) for c in s.update(lab, 0.1 if lab == "none?" else 0.9, float(i))]
    changes += s.close(20.0)
    ends = [c for c in changes if c.phase == "end"]
    assert [c.label for c in ends] == ["b", "c"]
    assert ends[0].since == 0.0  # the first state covers the unsettled frames before it
    assert sum(c.duration for c in ends) == 20.0  # no gaps, no overlaps
    assert all(a.at == b.since for a, b in zip(ends, ends[1:], strict=False))


@pytest.mark.usefixtures("model_env")
def test_pipeline_state_events_from_a_real_classifier(shared_data: Path) -> None:
    cat = cv2.imread(str(shared_data / "images" / "cat.bmp"))
    hopper = cv2.resize(cv2.imread(str(shared_data / "images" / "grace_hopper.bmp")), cat.shape[1::-1])
    app = config_for_video(
        "unused.mp4",
        detect={"classifier_model": "mobilenet-v2-imagenet-quant", "attributes_model": None},
        motion={"enabled": False},
    )
    p = Pipeline("cam", app.cameras["camera"], app)
    events = []
    for i, img in enumerate([cat] * 4 + [hopper] * 4):
        events += p.process(Frame("cam", i, 100.0 + i, img))
    events += p.close(108.0)
    assert all(e.seq == 0 and e.device == "" for e in events)  # the EventBus stamps them
    # a broken frame is counted and skipped, never raised
    assert p.process(Frame("cam", 99, 109.0, np.zeros((2, 2), np.uint8))) == []
    assert p.stats.frame_errors == 1
    states = [(e.phase, e.label, e.attrs.get("duration")) for e in events if e.type == "state"]
    assert len(states) == 4, states
    assert states[0][0] == "start" and "cat" in (states[0][1] or "")
    assert states[1] == ("end", states[0][1], 4.0)  # the cat was on screen from t=100 to t=104
    assert states[2][0] == "start" and states[2][1] != states[0][1]
    assert states[3][:2] == ("end", states[2][1]) and states[3][2] == 4.0
