"""Plate-specific slot recogniser (fast-plate-ocr ``cct-xs-v1-global-plate-ocr``).

The model reads a whole plate crop, stretched to 128x64 (no aspect keeping, linear
interpolation, uint8 RGB NHWC), into a fixed number of character *slots*: one classification
head per slot over ``0-9A-Z`` plus a pad symbol. Plates are left-aligned, so slot k is the
k-th character and the slots after the last character hold the pad. No CTC: decoding is a
per-slot argmax, and a region format is a per-slot mask (``decode_slot_formats``).

It is a plate reader, not a text reader: it answers 9 slots for any crop, so whether a crop is
a plate at all has to come from its confidences and the detector (see ``reader.plate_score``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.errors import ModelError
from edge.inference.backends import Backend
from edge.plates.decode import _CREDIT, Candidate
from edge.plates.formats import PlateFormat, allowed_masks
from edge.plates.ocr import ALPHABET

PAD = len(ALPHABET)  # index of the pad symbol in SlotOutput.probs
# Share of the CTC decoder's look-alike credit a region format gives in slot decoding (O/0: 0.5
# of the ruled-out character's probability). With formats' 0.85 boost, a format then settles a
# look-alike only where the model gives the allowed character more than about a quarter.
SLOT_CREDIT = 0.5


@dataclass
class SlotOutput:
    """Per-slot probabilities over ``ALPHABET + pad`` (slots, 37) for one crop."""

    probs: np.ndarray

    def greedy(self) -> tuple[str, list[float]]:
        """Argmax per slot with pads dropped: text and each character's probability."""
        best = self.probs.argmax(axis=1)
        text = "".join(ALPHABET[k] for k in best if k != PAD)
        conf = [float(self.probs[i, k]) for i, k in enumerate(best) if k != PAD]
        return text, conf

    def confidence(self) -> float:
        """Joint probability of the argmax reading, pad slots included (a doubtful pad is a
        doubtful extra character)."""
        return float(np.prod(self.probs.max(axis=1)))

    @staticmethod
    def join(lines: list[SlotOutput]) -> SlotOutput:
        """Two-line plate: the lines' slots one after the other, each line but the last cut
        after its argmax length (its pad slots are a constant factor folded into the first
        kept slot, so confidences stay joint probabilities over all slots)."""
        parts = []
        factor = 1.0
        for i, line in enumerate(lines):
            p = line.probs
            if i < len(lines) - 1:
                n = int((p.argmax(axis=1) != PAD).sum())
                factor *= float(np.prod(p[n:, PAD]))
                p = p[:n]
            parts.append(p)
        probs = np.concatenate(parts).astype(np.float32)
        if len(probs):
            probs[0] *= factor
        return SlotOutput(probs)


class SlotRecognizer:
    """Batched slot recognition of BGR crops."""

    def __init__(self, backend: Backend, labels: list[str], size: tuple[int, int] = (128, 64), pad_char: str = "_"):
        self.backend = backend
        self.input_name = backend.inputs[0].name
        self.width, self.height = int(size[0]), int(size[1])
        # model class -> column of SlotOutput.probs (ALPHABET order, pad last); other symbols dropped
        cols = []
        for lab in labels:
            if lab == pad_char:
                cols.append(PAD)
            elif len(lab) == 1 and lab.upper() in ALPHABET:
                cols.append(ALPHABET.index(lab.upper()))
            else:
                cols.append(-1)
        if PAD not in cols:
            raise ModelError(f"slot recogniser labels lack the pad symbol {pad_char!r}")
        self._cols = np.asarray(cols, dtype=np.int64)

    def prepare(self, crop_bgr: np.ndarray) -> np.ndarray:
        """The model input for one crop: stretched to the input size, RGB uint8 HWC."""
        img = cv2.resize(crop_bgr, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(img[:, :, ::-1])

    def recognize(self, crops_bgr: list[np.ndarray]) -> list[SlotOutput]:
        """Recognise a batch of crops in one call."""
        if not crops_bgr:
            return []
        batch = np.stack([self.prepare(c) for c in crops_bgr])
        probs = next(iter(self.backend.infer({self.input_name: batch}).values())).astype(np.float32)
        if probs.min() < 0 or probs.sum(axis=-1).max() > 1.5:  # logits, not probabilities
            e = np.exp(probs - probs.max(axis=-1, keepdims=True))
            probs = e / e.sum(axis=-1, keepdims=True)
        out = np.zeros((*probs.shape[:2], PAD + 1), dtype=np.float32)
        for j, col in enumerate(self._cols):
            if col >= 0:
                out[:, :, col] += probs[:, :, j]
        return [SlotOutput(p) for p in out]


def _beam(probs: np.ndarray, top_n: int) -> list[tuple[float, list[int]]]:
    """Top-N symbol sequences over independent per-slot distributions, by log product."""
    beams: list[tuple[float, list[int]]] = [(0.0, [])]
    for p in probs:
        order = np.argsort(-p)[: max(2, top_n)]
        nxt = [(lp + math.log(max(float(p[j]), 1e-9)), [*s, int(j)]) for lp, s in beams for j in order if p[j] > 0]
        beams = sorted(nxt, key=lambda b: -b[0])[:top_n]
    return beams


def decode_slots(out: SlotOutput, top_n: int = 3) -> list[Candidate]:
    """The argmax reading and its per-slot alternatives, best first (same text merged)."""
    best: dict[str, Candidate] = {}
    for lp, seq in _beam(out.probs, top_n):
        text = "".join(ALPHABET[k] for k in seq if k != PAD)
        confs = [float(out.probs[i, k]) for i, k in enumerate(seq) if k != PAD]
        if text and (text not in best or math.exp(lp) > best[text].confidence):
            best[text] = Candidate(text, math.exp(lp), confs)
    return sorted(best.values(), key=lambda c: -c.confidence)[:top_n]


class SlotTemplates:
    """Region templates stacked by length for vectorised slot decoding (built once per reader)."""

    def __init__(self, formats: list[PlateFormat], n_slots: int = 9):
        by_len: dict[int, dict[tuple[str, ...], PlateFormat]] = {}
        for f in formats:
            for tpl in f.templates:
                if len(tpl) <= n_slots:
                    by_len.setdefault(len(tpl), {}).setdefault(tpl, f)
        self.groups = [
            (
                n,
                np.stack([allowed_masks(t) for t in items]),
                np.array([f.weight for f in items.values()]),
                [f.name for f in items.values()],
            )
            for n, items in sorted(by_len.items())
        ]


def decode_slot_formats(out: SlotOutput, templates: SlotTemplates, top_n: int = 3) -> list[Candidate]:
    """Readings that fit a region template, best first.

    A template of length L takes slots 0..L-1, each restricted to its allowed characters (a
    per-slot mask), and requires the pad in the rest. A ruled-out look-alike of an allowed
    character (0 where the format needs an O) lends it only ``SLOT_CREDIT`` of the CTC
    decoder's credit: unlike a CTC text recogniser, whose language context picks between O and
    0, the slot model tells look-alikes apart by glyph and position, so a confident 0 is not an
    O. A format thus settles a look-alike where the model is in doubt, but cannot turn a
    confident read into what the format wants (a foreign plate that fits no listed format
    keeps its characters), nor drop or invent a character without paying its probability."""
    p = out.probs.astype(np.float64)
    chars = p[:, :PAD]
    credited = np.minimum(chars + SLOT_CREDIT * (chars @ _CREDIT.T), 1.0)
    scored: list[tuple[float, str, np.ndarray, float]] = []
    for n, masks, weights, names in templates.groups:
        if n > p.shape[0]:
            continue
        d = np.where(masks, credited[None, :n], 0.0)  # (M, L, 36)
        factors = float(np.prod(p[n:, PAD])) * weights
        conf = np.prod(d.max(axis=2), axis=1) * factors
        for i in np.argsort(-conf)[:top_n]:
            if conf[i] > 0:
                scored.append((float(conf[i]), names[i], d[i], float(factors[i])))
    scored.sort(key=lambda x: -x[0])
    best: dict[str, Candidate] = {}
    for _conf, name, dist, factor in scored[:top_n]:
        for lp, seq in _beam(dist, top_n):
            text = "".join(ALPHABET[k] for k in seq)
            cand = Candidate(text, math.exp(lp) * factor, [float(dist[i, k]) for i, k in enumerate(seq)], name)
            if text not in best or cand.confidence > best[text].confidence:
                best[text] = cand
    return sorted(best.values(), key=lambda c: -c.confidence)[:top_n]
