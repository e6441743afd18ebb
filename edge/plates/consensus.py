"""Per-track plate consensus: many noisy reads of one vehicle -> one plate.

Reads of a track are grouped by Jaro-Winkler similarity (as Frigate does); the group with the
most confidence wins, and its text is a confidence-weighted vote per character over the reads
of the group's most common length. A result is emitted the first time a track's plate is good
enough and again only when the text changes or the confidence improves by a margin.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from rapidfuzz.distance import JaroWinkler

from edge.plates.config import PlateConsensusConfig
from edge.plates.reader import PlateRead

log = logging.getLogger("edge.plates.consensus")


def jaro_winkler(a: str, b: str) -> float:
    """Jaro-Winkler similarity in [0, 1] (rapidfuzz: a well-kept C++ implementation)."""
    return float(JaroWinkler.similarity(a, b))


@dataclass
class PlateResult:
    """The consensus plate of one track."""

    track_id: int
    text: str
    confidence: float
    reads: int  # reads that agree with the text's group
    total_reads: int
    first_seen: float
    last_seen: float
    candidates: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class _Obs:
    text: str
    confidence: float
    ts: float


class PlateConsensus:
    """Collects reads per track; ``add`` returns a result when the plate is new or improved."""

    def __init__(self, cfg: PlateConsensusConfig | None = None, min_confidence: float = 0.5, max_reads: int = 50):
        self.cfg = cfg or PlateConsensusConfig()
        self.min_confidence = min_confidence
        self.max_reads = max_reads
        self._obs: dict[int, list[_Obs]] = defaultdict(list)
        self._reported: dict[int, PlateResult] = {}

    def add(self, track_id: int, read: PlateRead | None, ts: float) -> PlateResult | None:
        """Add one read (the best plate of the vehicle in one frame; None/empty is ignored)."""
        if read is None or not read.candidates:
            return None
        best = read.candidates[0]
        obs = self._obs[track_id]
        obs.append(_Obs(best.text, float(best.confidence), ts))
        if len(obs) > self.max_reads:  # keep the most confident reads of a long-lived track
            obs.sort(key=lambda o: o.confidence)
            del obs[0]
        result = self.current(track_id)
        if result is None:
            return None
        prev = self._reported.get(track_id)
        if (
            prev is not None
            and result.text == prev.text
            and result.confidence < prev.confidence + self.cfg.improve_margin
        ):
            return None
        if prev is not None and result.text != prev.text and result.confidence <= prev.confidence:
            return None  # a different text must also be better supported than the one reported
        self._reported[track_id] = result
        return result

    def current(self, track_id: int) -> PlateResult | None:
        """The track's consensus now, if it meets ``min_confidence`` and ``min_reads``."""
        obs = self._obs.get(track_id)
        if not obs:
            return None
        groups: list[list[_Obs]] = []
        for o in sorted(obs, key=lambda o: -o.confidence):
            for g in groups:
                if jaro_winkler(o.text, g[0].text) >= self.cfg.similarity:
                    g.append(o)
                    break
            else:
                groups.append([o])
        total = sum(o.confidence for o in obs) or 1e-9
        ranked = sorted(groups, key=lambda g: -sum(o.confidence for o in g))
        group = ranked[0]
        text = _vote(group)
        agree = [o for o in group if o.text == text]
        support = sum(o.confidence for o in group) / total
        evidence = 1.0
        for o in agree:  # independent reads of the same text reinforce each other
            evidence *= 1.0 - min(o.confidence, 0.99)
        confidence = support * (1.0 - evidence)
        if len(group) < self.cfg.min_reads or confidence < self.min_confidence:
            return None
        cands = [(text, confidence)]
        for g in ranked[1:4]:
            cands.append((_vote(g), sum(o.confidence for o in g) / total))
        return PlateResult(
            track_id, text, confidence, len(group), len(obs), min(o.ts for o in obs), max(o.ts for o in obs), cands
        )

    def finish(self, track_id: int) -> PlateResult | None:
        """Forget a finished track; return its final plate if it differs from the last reported."""
        result = self.current(track_id)
        prev = self._reported.pop(track_id, None)
        self._obs.pop(track_id, None)
        if result is None or (prev is not None and prev.text == result.text):
            return None
        return result


def _vote(group: list[_Obs]) -> str:
    """Confidence-weighted vote: first the length, then each character position."""
    by_len: dict[int, float] = defaultdict(float)
    for o in group:
        by_len[len(o.text)] += o.confidence
    n = max(by_len, key=lambda k: by_len[k])
    same = [o for o in group if len(o.text) == n]
    out = []
    for i in range(n):
        votes: dict[str, float] = defaultdict(float)
        for o in same:
            votes[o.text[i]] += o.confidence
        out.append(max(votes, key=lambda k: votes[k]))
    return "".join(out)
