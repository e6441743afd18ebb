"""ByteTrack-style multi-object tracker with stable ids and a start/end lifecycle.

Three association stages with Hungarian assignment from SciPy: confident detections on IoU
with the Kalman-predicted boxes; then low-score ones, only to extend existing tracks (blur,
occlusion, a small far vehicle); then what is left on centre distance, so a small fast vehicle
that moved more than its own length between samples (no IoU with its prediction) keeps its
track instead of starting a new one that never confirms. A track starts after
``min_hits`` matches and ends after ``max_age`` seconds unmatched. Time is in seconds, not
frames, so motion gating and variable sampling rates do not change the behaviour.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from edge.config import TrackerConfig
from edge.tracking.geometry import iou_matrix
from edge.tracking.kalman import BoxKalman
from edge.tracking.state import TrackState
from edge.types import Detections

TENTATIVE_LOW_IOU = 0.5  # a weak detection carries a tentative track only where it clearly overlaps it
NEAR_RADIUS = 1.5  # stage 3: detection centre within this many box sizes of the predicted centre
NEAR_AREA_RATIO = 2.5  # ... and its area within this factor of the track's


@dataclass
class Track:
    """One object over time. ``id`` is 0 until the track is confirmed, then unique and stable."""

    kf: BoxKalman
    box: np.ndarray
    score: float
    first_seen: float
    last_seen: float
    hits: int = 1
    id: int = 0
    label_votes: dict[str, float] = field(default_factory=dict)
    attr_votes: dict[str, dict[str, float]] = field(default_factory=dict)  # e.g. type, color
    state: TrackState = field(default_factory=TrackState)  # what later stages remember
    last_det: int = -1  # index into the latest Detections, -1 when unmatched this frame
    measured: np.ndarray | None = None  # last detected box (``box`` is the Kalman estimate)

    @property
    def last_box(self) -> np.ndarray:
        """The last detected box, or the Kalman estimate before any (events report this)."""
        return self.measured if self.measured is not None else self.box

    @property
    def speed(self) -> float:
        """Estimated speed of the box centre, in frame heights/widths per second."""
        return float(np.hypot(self.kf.x[4], self.kf.x[5]))

    @property
    def confirmed(self) -> bool:
        """True once the track has an id (has been started)."""
        return self.id > 0

    @property
    def label(self) -> str:
        """The label with the most accumulated score (stable when a detector flickers)."""
        return max(self.label_votes.items(), key=lambda kv: kv[1])[0] if self.label_votes else ""

    def vote(self, label: str, score: float) -> None:
        """Count one detection's label."""
        self.label_votes[label] = self.label_votes.get(label, 0.0) + score

    def vote_attr(self, key: str, value: str, weight: float) -> None:
        """Count one observation of an attribute (vehicle type, colour...)."""
        votes = self.attr_votes.setdefault(key, {})
        votes[value] = votes.get(value, 0.0) + float(weight)

    def top_attr(self, key: str) -> str | None:
        """The attribute value with the most accumulated weight: one stable value per track."""
        votes = self.attr_votes.get(key)
        return max(votes.items(), key=lambda kv: kv[1])[0] if votes else None


class Tracker:
    """Associates per-frame detections into tracks."""

    def __init__(self, cfg: TrackerConfig, id_start: int = 1) -> None:
        self.cfg = cfg
        self._tracks: list[Track] = []
        self._ids = itertools.count(id_start)
        self._last_time: float | None = None

    @property
    def active(self) -> list[Track]:
        """Confirmed tracks that have not ended."""
        return [t for t in self._tracks if t.confirmed]

    @property
    def tracks(self) -> list[Track]:
        """Every live track, tentative ones included."""
        return list(self._tracks)

    def settled(self, max_speed: float = 0.02) -> bool:
        """True when every track was matched last time and is (nearly) still: only then may the
        motion gate skip inference without missing a departure."""
        return all(t.last_det >= 0 and t.speed <= max_speed for t in self._tracks)

    def keep_alive(self, now: float) -> None:
        """Nothing moved since the last inference (motion gate): tracks stay where they were."""
        for t in self._tracks:
            t.last_seen = now
        self._last_time = now

    def update(self, dets: Detections, now: float) -> tuple[Detections, list[Track]]:
        """Match ``dets`` to tracks at time ``now``; returns dets with tracker ids and the
        confirmed tracks that ended (unseen for ``max_age``). A track is confirmed (gets its id)
        after ``min_hits`` matches; callers see that as ``track.confirmed``."""
        dt = 0.0 if self._last_time is None else max(0.0, now - self._last_time)
        self._last_time = now
        for t in self._tracks:
            t.box = t.kf.predict(dt)
            t.last_det = -1
        cfg = self.cfg
        assert dets.tracker_id is not None
        dets.tracker_id[:] = -1
        # "low" marks detections under their label's min_score: they may extend but never start
        weak = np.asarray(dets.data.get("low", np.zeros(len(dets), bool)), bool)
        is_high = (dets.confidence >= cfg.high_score) & ~weak
        high = np.flatnonzero(is_high)
        low = np.flatnonzero((dets.confidence >= cfg.low_score) & ~is_high)

        # stage 1: every track against confident detections
        unmatched_tracks, unmatched_high = self._associate(
            list(range(len(self._tracks))), high, dets, cfg.iou_threshold
        )
        # stage 2: tracks left over against low-score detections (occlusion, blur, small and far):
        # confirmed ones on a plain overlap, tentative ones (started by a confident detection) on a
        # close one, so a weak detection never makes a track but can carry one to confirmation
        confirmed_left = [i for i in unmatched_tracks if self._tracks[i].confirmed]
        left, low_left = self._associate(confirmed_left, low, dets, max(cfg.iou_threshold, 0.5))
        tentative_left = [i for i in unmatched_tracks if not self._tracks[i].confirmed]
        left_t, low_left = self._associate(tentative_left, np.asarray(low_left, int), dets, TENTATIVE_LOW_IOU)
        # stage 3: tracks left against confident detections on centre distance: fast small vehicles
        left_all = sorted(left + left_t)
        still_unmatched, unmatched_high = self._associate_near(left_all, np.asarray(unmatched_high, int), dets)
        unmatched_set = set(still_unmatched)

        ended: list[Track] = []
        for i, t in enumerate(self._tracks):
            if i in unmatched_set:
                continue
            t.hits += 1
            t.last_seen = now
            if not t.confirmed and t.hits >= cfg.min_hits:
                t.id = next(self._ids)
            if t.confirmed:
                dets.tracker_id[t.last_det] = t.id

        survivors = []
        for i, t in enumerate(self._tracks):
            if i in unmatched_set:
                age = now - t.last_seen
                # tentative tracks get one sample of patience: a lone false positive never starts
                if (t.confirmed and age > cfg.max_age) or (not t.confirmed and age > min(cfg.max_age, 1.0)):
                    if t.confirmed:
                        ended.append(t)
                    continue
            survivors.append(t)
        self._tracks = survivors

        for j in unmatched_high:
            box = dets.xyxy[j].copy()
            t = Track(BoxKalman(box), box, float(dets.confidence[j]), now, now, last_det=int(j), measured=box)
            t.vote(dets.labels[j], float(dets.confidence[j]))
            if cfg.min_hits <= 1:
                t.id = next(self._ids)
                dets.tracker_id[j] = t.id
            self._tracks.append(t)
        return dets, ended

    def close(self) -> list[Track]:
        """End every confirmed track (end of stream or shutdown); returns them."""
        ended = [t for t in self._tracks if t.confirmed]
        self._tracks = []
        return ended

    def _associate_near(
        self, track_idx: list[int], det_idx: np.ndarray, dets: Detections
    ) -> tuple[list[int], list[int]]:
        """Match tracks to confident detections of a similar size whose centre is within
        ``NEAR_RADIUS`` box sizes of the predicted centre (no IoU needed); Hungarian on distance."""
        if not track_idx or len(det_idx) == 0:
            return track_idx, [int(j) for j in det_idx]
        tb = np.stack([self._tracks[i].box for i in track_idx]).astype(np.float64)
        db = dets.xyxy[det_idx].astype(np.float64)
        tc, dc = (tb[:, :2] + tb[:, 2:]) / 2, (db[:, :2] + db[:, 2:]) / 2
        tsz = np.maximum(tb[:, 2:] - tb[:, :2], 1e-4)
        dsz = np.maximum(db[:, 2:] - db[:, :2], 1e-4)
        # distance in units of the track's box size (per axis), so near means "about a length away"
        diff = (tc[:, None, :] - dc[None, :, :]) / tsz[:, None, :]
        dist = np.hypot(diff[..., 0], diff[..., 1])
        ratio = np.prod(dsz[None, :, :] / tsz[:, None, :], axis=2)
        ok = (dist <= NEAR_RADIUS) & (ratio >= 1 / NEAR_AREA_RATIO) & (ratio <= NEAR_AREA_RATIO)
        rows, cols = linear_sum_assignment(np.where(ok, dist, 1e6))
        matched_t, matched_d = set(), set()
        for r, c in zip(rows, cols):
            if not ok[r, c]:
                continue
            self._match(self._tracks[track_idx[r]], int(det_idx[c]), dets)
            matched_t.add(track_idx[r])
            matched_d.add(int(det_idx[c]))
        return [i for i in track_idx if i not in matched_t], [int(j) for j in det_idx if int(j) not in matched_d]

    @staticmethod
    def _match(t: Track, j: int, dets: Detections) -> None:
        """Track ``t`` is detection ``j`` this frame."""
        t.kf.update(dets.xyxy[j])
        t.box = dets.xyxy[j].copy()
        t.measured = t.box
        t.score = float(dets.confidence[j])
        t.vote(dets.labels[j], t.score)
        t.last_det = j

    def _associate(
        self, track_idx: list[int], det_idx: np.ndarray, dets: Detections, min_iou: float
    ) -> tuple[list[int], list[int]]:
        """Hungarian matching on IoU; returns (unmatched track indices, unmatched detection indices)."""
        if not track_idx or len(det_idx) == 0:
            return track_idx, [int(j) for j in det_idx]
        boxes = np.stack([self._tracks[i].box for i in track_idx])
        iou = iou_matrix(boxes, dets.xyxy[det_idx])
        rows, cols = linear_sum_assignment(-iou)
        matched_t, matched_d = set(), set()
        for r, c in zip(rows, cols):
            if iou[r, c] < min_iou:
                continue
            j = int(det_idx[c])
            self._match(self._tracks[track_idx[r]], j, dets)
            matched_t.add(track_idx[r])
            matched_d.add(j)
        return [i for i in track_idx if i not in matched_t], [int(j) for j in det_idx if int(j) not in matched_d]
