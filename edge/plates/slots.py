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


MIXED_SLOT = 0.9  # weight factor per template slot that allows both letters and digits


class SlotTemplates:
    """Region templates for vectorised slot decoding (built once per reader).

    ``groups``: per length, the allowed-character masks (M, L, 36), weights, names (the previous
    decoder's layout). For the constrained decoder all templates at once: ``allowed`` (M, S, 37)
    over the model's S slots, pad only after a template's length; ``weights`` (M,), ``names``,
    ``lengths`` and ``alphabets`` (M, 36): what each template's region issues anywhere."""

    def __init__(self, formats: list[PlateFormat], n_slots: int = 9, own_alphabets: bool = True):
        """``own_alphabets``: each template rules out what its region never issues; off (the
        no-region prior) every template allows what any listed region does, so a US template
        cannot claim a Brazilian O as its 0 merely because US plates have no O."""
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
        # every character some listed format uses (a reading with another one fits no region)
        self.alphabet = "".join(ch for ch in ALPHABET if any(ch in f.alphabet for f in formats))
        tpls = [(t, f) for _, items in sorted(by_len.items()) for t, f in items.items()]
        self._tpls = [t for t, _ in tpls]
        # a slot that allows letters and digits alike tells little: a loose format (Slovenia's
        # "two letters, then 2-6 of anything") accepts almost any reading, so it must not count
        # as much evidence as a scheme with fixed letter and digit slots
        mixed = [sum(any(c.isdigit() for c in a) and any(c.isalpha() for c in a) for a in t) for t, _ in tpls]
        self.weights = np.array([f.weight * MIXED_SLOT**k for (_, f), k in zip(tpls, mixed)], dtype=np.float64)
        self.names = [f.name for _, f in tpls]
        self.lengths = np.array([len(t) for t, _ in tpls], dtype=np.int64)
        self.alphabets = np.array(
            [[ch in (f.alphabet if own_alphabets else self.alphabet) for ch in ALPHABET] for _, f in tpls], dtype=bool
        ).reshape(len(tpls), len(ALPHABET))
        self._allowed: dict[int, np.ndarray] = {}
        self._layouts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def allowed(self, n_slots: int) -> np.ndarray:
        """(M, n_slots, 37) allowed symbols per slot: the template's characters, then the pad."""
        if n_slots not in self._allowed:
            out = np.zeros((len(self._tpls), n_slots, PAD + 1), dtype=bool)
            for i, t in enumerate(self._tpls):
                n = min(len(t), n_slots)
                out[i, :n, :PAD] = allowed_masks(t)[:n]
                out[i, len(t) :, PAD] = True
            self._allowed[n_slots] = out
        return self._allowed[n_slots]

    def layout(self, n_slots: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Templates as slot *classes* (most slots of most templates are one of a few: letters,
        digits, either, a region's letters ...): class id per template slot (M, n_slots), each
        class's allowed symbols (U, 37) and region alphabet (U, 36). The decoder scores the
        classes once per slot instead of every template's every slot."""
        if n_slots not in self._layouts:
            allowed = self.allowed(n_slots)
            keys: dict[bytes, int] = {}
            ids = np.zeros(allowed.shape[:2], dtype=np.int64)
            rows: list[tuple[np.ndarray, np.ndarray]] = []
            for i in range(allowed.shape[0]):
                for k in range(n_slots):
                    key = allowed[i, k].tobytes() + self.alphabets[i].tobytes()
                    if key not in keys:
                        keys[key] = len(rows)
                        rows.append((allowed[i, k], self.alphabets[i]))
                    ids[i, k] = keys[key]
            cls_allowed = np.array([a for a, _ in rows], dtype=bool).reshape(len(rows), PAD + 1)
            cls_alph = np.array([b for _, b in rows], dtype=bool).reshape(len(rows), PAD)
            self._layouts[n_slots] = (ids, cls_allowed, cls_alph)
        return self._layouts[n_slots]


# Credit a character outside the template's region alphabet gives its look-alikes: the region
# never issues it, so the model's probability for it is a misread of one of them. Each column
# of the look-alike table scaled so the likeliest look-alike gets all of it (I -> 1, O -> 0,
# Q -> 0), the others their share relative to it.
_EXCLUDED_CREDIT = _CREDIT / np.maximum(_CREDIT.max(axis=0, keepdims=True), 1e-12)


def _sparse(credit: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A look-alike table as pairs sorted by the character credited: source, weight, the start
    of each credited character's run and the credited characters (for ``np.add.reduceat``; a
    dense product would call BLAS, whose threads fight other work on a small shared CPU)."""
    dst, src = np.nonzero(credit)
    order = np.argsort(dst, kind="stable")
    dst, src = dst[order], src[order]
    targets, starts = np.unique(dst, return_index=True)
    return src, credit[dst, src].astype(np.float64), starts, targets


_LEND = _sparse(_CREDIT)
_LEND_EXCLUDED = _sparse(_EXCLUDED_CREDIT)


def _lend(ruled_out: np.ndarray, table: tuple[np.ndarray, ...]) -> np.ndarray:
    """What ruled-out characters (..., 36) lend their look-alikes under ``table`` (..., 36)."""
    src, weight, starts, targets = table
    out = np.zeros_like(ruled_out)
    out[..., targets] = np.add.reduceat(ruled_out[..., src] * weight, starts, axis=-1)
    return out


# Templates this many characters longer or shorter than the free reading are not scored: they
# would pay a confidently read character or pad, and never win.
LENGTH_SLACK = 1


def decode_slot_formats(out: SlotOutput, templates: SlotTemplates, top_n: int = 3) -> list[Candidate]:
    """The best readings under each region template, best first: format-constrained decoding.

    A template of length L takes slots 0..L-1, each restricted to the characters its format
    allows there, and needs the pad in the rest (so a template cannot drop or invent a
    character without paying for it). Slots are independent, so the best reading under a
    template is the best allowed character of each slot, and the next ones come from a beam
    over the masked slot distributions. A character the template rules out lends its
    probability to an allowed look-alike: in full when its region never issues it at all (a
    US ``I`` is a ``1``, an ``O`` a ``0``), and ``SLOT_CREDIT`` of the look-alike credit when
    only this position rules it out (the slot model tells look-alikes apart by glyph and
    position, so a confident 0 where a Polish format wants a letter is not an O: a plate of an
    unlisted format keeps it). A template's reading scores its slot probabilities times its
    format's weight. All templates are scored in one vectorised pass."""
    p = out.probs.astype(np.float64)
    s = p.shape[0]
    n_free = int((p.argmax(axis=1) != PAD).sum())
    keep = np.flatnonzero(np.abs(templates.lengths - n_free) <= LENGTH_SLACK)
    if keep.size == 0:
        return []
    ids, cls_allowed, cls_alph = templates.layout(s)
    ids = ids[keep]  # (M, S) slot class of each kept template slot
    chars = p[:, :PAD]
    ruled_out = chars[:, None, :] * ~cls_allowed[None, :, :PAD]  # (S, U, 36): ruled-out probability
    alph = cls_alph[None]
    lent = _lend(ruled_out * np.where(alph, SLOT_CREDIT, 0.0), _LEND) + _lend(ruled_out * ~alph, _LEND_EXCLUDED)
    credited = np.minimum(chars[:, None, :] + lent, 1.0)
    pad = np.broadcast_to(p[:, None, PAD:], (s, len(cls_allowed), 1))
    d = np.where(cls_allowed[None], np.concatenate([credited, pad], axis=2), 0.0)  # (S, U, 37)
    slot_best = d.max(axis=2)[np.arange(s)[None, :], ids]  # (M, S)
    weights = templates.weights[keep]
    conf = np.prod(slot_best, axis=1) * weights
    scored: list[tuple[float, str, np.ndarray, float, float]] = []
    for i in np.argsort(-conf)[:top_n]:
        if conf[i] > 0:
            n = int(templates.lengths[keep[i]])
            factor = float(np.prod(p[n:, PAD])) * float(weights[i])
            dist = d[np.arange(n), ids[i, :n], :PAD]
            scored.append((float(conf[i]), templates.names[keep[i]], dist, factor, float(weights[i])))
    return _expand_best(scored, top_n, beam_all=False)


def _expand_best(
    scored: list[tuple[float, str, np.ndarray, float, float]], top_n: int, beam_all: bool = True
) -> list[Candidate]:
    """Per-slot alternatives of the best-scoring templates (score, format name, masked slot
    distributions, factor = pad probabilities x weight, weight), merged by text, best first.
    ``beam_all`` off: alternatives of the best template only, the others' best reading."""
    scored.sort(key=lambda x: -x[0])
    best: dict[str, Candidate] = {}
    for rank, (_conf, name, dist, factor, weight) in enumerate(scored[:top_n]):
        if rank == 0 or beam_all:
            beams = _beam(dist, top_n)
        else:
            seq = [int(k) for k in dist.argmax(axis=1)]
            beams = [(float(np.log(np.maximum(dist.max(axis=1), 1e-9)).sum()), seq)]
        for lp, seq in beams:
            text = "".join(ALPHABET[k] for k in seq)
            confs = [float(dist[i, k]) for i, k in enumerate(seq)]
            cand = Candidate(text, math.exp(lp) * factor, confs, name, weight)
            if text not in best or cand.confidence > best[text].confidence:
                best[text] = cand
    return sorted(best.values(), key=lambda c: -c.confidence)[:top_n]


def decode_slot_formats_legacy(out: SlotOutput, templates: SlotTemplates, top_n: int = 3) -> list[Candidate]:
    """The previous format decoder, kept for side-by-side benchmarks (``PlateReader(decoder=
    "legacy")``): every look-alike, allowed or not, lends ``SLOT_CREDIT`` of its credit, and
    region alphabets are ignored."""
    p = out.probs.astype(np.float64)
    chars = p[:, :PAD]
    credited = np.minimum(chars + SLOT_CREDIT * (chars @ _CREDIT.T), 1.0)
    scored: list[tuple[float, str, np.ndarray, float, float]] = []
    for n, masks, weights, names in templates.groups:
        if n > p.shape[0]:
            continue
        d = np.where(masks, credited[None, :n], 0.0)  # (M, L, 36)
        factors = float(np.prod(p[n:, PAD])) * weights
        conf = np.prod(d.max(axis=2), axis=1) * factors
        for i in np.argsort(-conf)[:top_n]:
            if conf[i] > 0:
                scored.append((float(conf[i]), names[i], d[i], float(factors[i]), float(weights[i])))
    return _expand_best(scored, top_n)
