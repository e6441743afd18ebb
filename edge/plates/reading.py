"""What the plate recognisers share: the reading of one plate (:class:`PlateRead`), the
recogniser interface (:class:`PlateRecognizer`), ranking and the tuning constants."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from edge.plates.config import PlatesConfig
from edge.plates.decode import Candidate, decode_formats, decode_free
from edge.plates.detect import YuNetPlateDetector
from edge.plates.formats import PlateFormat
from edge.plates.ocr import CtcOutput
from edge.plates.plateness import chars_factor

CONFIDENT = 0.6  # a plate read above this ends the search (weaker quads, tiles)
FREE_READ_PENALTY = 0.5  # a read that fits no configured format counts half
COMPLETE_RATIO = 0.85  # see _prefer_complete
SUPPORT_BONUS, MAX_SUPPORT = 0.01, 5  # see _rank


@dataclass
class PlateRead:
    """One plate in an image: corners (4, 2) in image pixels (tl, tr, br, bl), its box
    normalised ``xyxy`` to the image, detector score and text candidates best first."""

    corners: np.ndarray
    box: np.ndarray
    detector_score: float
    candidates: list[Candidate] = field(default_factory=list)
    score: float = -1.0  # plate-ness weighed confidence that ranks plates (-1: the confidence)
    _outs: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # margins -> SlotOutput

    def __post_init__(self) -> None:
        if self.score < 0:
            self.score = self.confidence

    @property
    def text(self) -> str:
        """Best candidate's text ('' if none)."""
        return self.candidates[0].text if self.candidates else ""

    @property
    def confidence(self) -> float:
        """Best candidate's confidence (0 if none)."""
        return self.candidates[0].confidence if self.candidates else 0.0

    def texts(self) -> list[tuple[str, float]]:
        """Candidates as (text, confidence) pairs."""
        return [(c.text, c.confidence) for c in self.candidates]


class PlateRecognizer(Protocol):
    """Reads the plates in one region of an image (a vehicle crop or a whole frame): finds them
    with the reader's plate detector and reads each with its recogniser. One implementation per
    recogniser model (:func:`edge.plates.loader.load_recognizer` picks it by the model's head)."""

    def read_region(self, img: np.ndarray, in_vehicle: bool) -> list[PlateRead]:
        """Plates in ``img`` (BGR, region pixels), best first."""
        ...


class RegionReader:
    """What every recogniser reads with: the plates config, the plate detector, the configured
    regions' formats and the decoder (``constrained`` or ``legacy``); ranks and CTC-decodes."""

    def __init__(
        self, cfg: PlatesConfig, detector: YuNetPlateDetector, formats: list[PlateFormat], decoder: str
    ) -> None:
        self.cfg = cfg
        self.detector = detector
        self.formats = formats
        self.decoder = decoder

    def _decode(self, ctcs: list[CtcOutput]) -> list[Candidate]:
        cfg = self.cfg
        ctc = ctcs[0] if len(ctcs) == 1 else CtcOutput(np.concatenate([c.probs for c in ctcs]))
        cands = decode_free(ctc, cfg.top_n)
        if self.formats:
            # readings that fit a format come from the template decoder, so every fitting
            # reading is scored the same way; the others stay, at a penalty
            cands = [c for c in cands if not any(f.match(c.text) for f in self.formats)]
            for c in cands:
                c.confidence *= FREE_READ_PENALTY
            cands += decode_formats(ctc, self.formats, cfg.top_n)
        return cands

    def _rank(self, cands: list[Candidate], by_length: bool = False) -> list[Candidate]:
        """Candidates of one plate, deduplicated, best first (``by_length``: weighing each by how
        common its length is for a plate, for readers whose confidence ignores length)."""
        cfg = self.cfg
        best: dict[str, Candidate] = {}
        for c in cands:
            if not cfg.min_chars <= len(c.text) <= cfg.max_chars:
                continue
            if (
                cfg.strict_formats
                and self.formats
                and c.format is None
                and not any(f.match(c.text) for f in self.formats)
            ):
                continue
            if c.text not in best or c.confidence > best[c.text].confidence:
                best[c.text] = c
        ranked = list(best.values())
        if self.formats:
            # near ties between formats (BA302OZ vs BA3020Z when O/0 is one glyph): prefer the
            # reading that more regions' formats accept, i.e. the more common plate pattern.
            # Relative to the best-supported reading, so the tie-break never lowers that one's
            # confidence (with one region, e.g. br, nothing changes and no read turns doubtful)
            support = [len({f.name for f in self.formats if f.match(c.text)}) for c in ranked]
            top = min(max(support, default=0), MAX_SUPPORT)
            for i, c in enumerate(ranked):
                factor = 1.0 - SUPPORT_BONUS * max(0, top - support[i])
                ranked[i] = replace(c, confidence=c.confidence * factor)
        if by_length:
            ranked.sort(key=lambda c: -c.confidence * chars_factor(len(c.text)))
        else:
            ranked.sort(key=lambda c: -c.confidence)
        return _prefer_complete(ranked)[: cfg.top_n]


_FOLD = str.maketrans("OI", "01")


def _missing(short: str, long: str) -> int:
    """How many characters ``short`` lacks if it is ``long`` with 1-2 characters removed
    (O/0 and I/1 folded), else 0."""
    s, lg = short.translate(_FOLD), long.translate(_FOLD)
    k = len(lg) - len(s)
    if k not in (1, 2):
        return 0
    it = iter(lg)
    return k if all(ch in it for ch in s) else 0  # subsequence test


def _prefer_complete(ranked: list[Candidate]) -> list[Candidate]:
    """Move a near-equally confident reading with one more character ahead of the best one.

    CTC recognisers drop a character (a merged double, a squeezed edge) far more often than
    they invent a confident one, and a dropped character costs no confidence, so between two
    crops reading ``SG7471`` (0.99) and ``SG47471`` (0.97) the longer one is the better bet.
    """
    if not ranked:
        return ranked
    best = ranked[0]
    while True:
        longer = [
            c
            for c in ranked
            if (k := _missing(best.text, c.text)) and c.confidence >= COMPLETE_RATIO**k * best.confidence
        ]
        if not longer:
            break
        best = max(longer, key=lambda c: c.confidence)
    return [best, *[c for c in ranked if c is not best]]


def best_confidence(reads: list[PlateRead]) -> float:
    """The most confident read's confidence (0 without reads)."""
    return max((r.confidence for r in reads), default=0.0)
