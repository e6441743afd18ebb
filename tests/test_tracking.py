"""Tracker lifecycle, id stability, zones, filters and masks on controlled detections."""

from __future__ import annotations

import numpy as np

from edge.config import ObjectsConfig, TrackerConfig, ZoneConfig
from edge.tracking import Tracker
from edge.tracking.filters import filter_detections
from edge.tracking.zones import Zones
from edge.types import Detections


def dets(*boxes: tuple[float, float, float, float], score: float = 0.9, label: str = "car") -> Detections:
    n = len(boxes)
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), [score] * n, [0] * n, [label] * n)


def test_track_starts_after_min_hits_and_ends_after_max_age() -> None:
    tr = Tracker(TrackerConfig(min_hits=3, max_age=1.0))
    confirmed_at = None
    for i in range(5):  # a car moving right at 0.05 per 0.2 s
        x = 0.1 + 0.05 * i
        _, ended = tr.update(dets((x, 0.4, x + 0.2, 0.6)), i * 0.2)
        assert ended == []
        if confirmed_at is None and tr.active:
            confirmed_at = i
    assert confirmed_at == 2 and [t.id for t in tr.active] == [1]
    t, ended = 1.0, []
    while t < 3.0 and not ended:  # nothing detected any more
        t += 0.2
        ended = tr.update(dets(), t)[1]
    assert [e.id for e in ended] == [1]
    assert 1.8 <= round(t, 1) <= 2.2  # last seen at 0.8 s + max_age 1.0 s


def test_single_false_positive_never_starts_a_track() -> None:
    tr = Tracker(TrackerConfig(min_hits=2))
    tr.update(dets((0.1, 0.1, 0.2, 0.2)), 0.0)
    for i in range(1, 10):
        assert tr.update(dets(), i * 0.2)[1] == []
        assert tr.active == []  # the tentative track never gets an id


def test_two_crossing_objects_keep_their_ids() -> None:
    tr = Tracker(TrackerConfig(min_hits=2, iou_threshold=0.1))
    ids_a, ids_b = set(), set()
    for i in range(20):  # A moves right, B moves left, they pass each other mid-frame
        xa, xb = 0.05 + 0.04 * i, 0.75 - 0.04 * i
        d, _ = tr.update(dets((xa, 0.40, xa + 0.2, 0.6), (xb, 0.45, xb + 0.2, 0.65)), i * 0.2)
        assert d.tracker_id is not None
        if i >= 2:
            ids_a.add(int(d.tracker_id[0]))
            ids_b.add(int(d.tracker_id[1]))
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b


def test_low_score_detections_extend_but_do_not_start_tracks() -> None:
    tr = Tracker(TrackerConfig(min_hits=2, high_score=0.5, low_score=0.1, max_age=0.3))
    for i in range(3):
        tr.update(dets((0.1, 0.1, 0.3, 0.3)), i * 0.2)
    # occluded: only weak detections for a second; the track survives on them
    for i in range(3, 8):
        _, ch = tr.update(dets((0.1, 0.1, 0.3, 0.3), score=0.2), i * 0.2)
        assert ch == []
    assert [t.id for t in tr.active] == [1]
    tr2 = Tracker(TrackerConfig(min_hits=1, high_score=0.5, low_score=0.1))
    tr2.update(dets((0.1, 0.1, 0.3, 0.3), score=0.2), 0.0)
    assert tr2.active == []


def test_track_label_is_the_majority_vote() -> None:
    tr = Tracker(TrackerConfig(min_hits=1))
    for i, label in enumerate(["car", "truck", "car", "car"]):
        tr.update(dets((0.1, 0.1, 0.3, 0.3), label=label), i * 0.2)
    assert tr.active[0].label == "car"


def test_zones_use_the_bottom_centre() -> None:
    z = Zones(
        {
            "lane": ZoneConfig(coordinates=[(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)]),
            "trucks": ZoneConfig(coordinates=[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)], objects=["truck"]),
        }
    )
    # box mostly above the lane but its wheels (bottom centre) are in it
    assert z.of(np.array([0.2, 0.1, 0.4, 0.6]), "car") == ["lane"]
    assert z.of(np.array([0.2, 0.1, 0.4, 0.4]), "car") == []
    assert z.of(np.array([0.2, 0.1, 0.4, 0.6]), "truck") == ["lane", "trucks"]


def test_filters_labels_area_score_and_masks() -> None:
    objects = ObjectsConfig(track=["car"], filter={"min_score": 0.5, "min_area": 0.01, "max_area": 0.5})
    d = Detections(
        np.array(
            [
                [0.1, 0.1, 0.3, 0.3],
                [0.1, 0.1, 0.3, 0.3],
                [0.1, 0.1, 0.12, 0.12],
                [0, 0, 1, 1],
                [0.6, 0.6, 0.8, 0.8],
                [0.1, 0.1, 0.3, 0.3],
            ],
            np.float32,
        ),
        [0.9, 0.9, 0.9, 0.9, 0.9, 0.3],
        [0] * 6,
        ["car", "person", "car", "car", "car", "car"],
    )
    mask = [[(0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0)]]
    kept = filter_detections(d, objects, mask, low_score=0.2)
    assert len(kept) == 2  # the good car, and the weak one kept only to extend tracks
    assert kept.data["low"].tolist() == [False, True]
