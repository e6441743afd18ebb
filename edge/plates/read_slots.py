"""The slot reader (``ocr_model: cct-xs-v1-global-plate-ocr``, the default): every detected quad
read in one batched call, plates ranked by plate-ness, a doubtful best plate read again from more
crops (see :mod:`edge.plates.reader`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edge.plates.decode import Candidate
from edge.plates.detect import PlateQuad
from edge.plates.formats import PlateFormat, known_formats
from edge.plates.geometry import box_iou
from edge.plates.ocr import PaddleRecognizer
from edge.plates.plateness import mix_factor, plate_score, position_factor, stacked_factor
from edge.plates.reading import (
    CONFIDENT,
    PlateRead,
    RegionReader,
)
from edge.plates.rectify import grow_quad, quad_size, warp_quad
from edge.plates.slots import (
    SlotOutput,
    SlotRecognizer,
    SlotTemplates,
    decode_slot_formats,
    decode_slot_formats_legacy,
    decode_slots,
)

# Slot reader crops of a quad (left, top, right, bottom margins as fractions of its size). The
# model was trained on plate crops with a border: 15% of the width left/right and 30% of the
# height above/below reads best on the detector's quads (on the shared sets' best quads:
# 15%/30% 201/222 exact, 10%/20% 192/222; 15%/25% and 15%/35% within one plate of 15%/30%).
SLOT_BASE = (0.15, 0.30, 0.15, 0.30)
# A horizontally wider crop for quads that cut off an end character (LPD-YuNet, trained on
# Chinese plates, often misses the first or last one) and a taller one for quads that cut off
# the top or bottom of the characters: read for the best plate, ranked with the base read.
SLOT_WIDE = (0.30, 0.20, 0.30, 0.20)
SLOT_TALL = (0.10, 0.40, 0.10, 0.40)
SLOT_MARGINS = (SLOT_BASE, SLOT_WIDE, SLOT_TALL)
# Test-time variants of a doubtful best plate: the base crop with its margins moved a little.
# Their per-slot probabilities are averaged with the base crop's (one reading, not the most
# confident of several: a single crop's look-alike confusion, O/D, P/J, is outvoted).
SLOT_JITTER = ((0.15, 0.25, 0.15, 0.25), (0.20, 0.30, 0.20, 0.30), (0.15, 0.35, 0.15, 0.35), (0.12, 0.30, 0.12, 0.30))
DOUBTFUL = 0.9  # a best plate read less confidently than this gets the test-time variants
# A read this short may be one line of a two-line plate (the detector often boxes one line):
# the best plate is then also read with a line's height added above, and below.
SHORT_READ = 4
MIN_RELATIVE_DET = 0.1  # quads scoring below this share of the best quad's are not read
MIN_PLATE_SCORE = 0.05  # slot reads below this plate-ness are dropped (see SlotReader.read_region)
TWO_LINE_MARGINS = ((0.15, 1.4, 0.15, 0.2), (0.15, 0.2, 0.15, 1.4))
JOIN_OVERLAP, JOIN_HEIGHT_RATIO = 0.6, 1.5  # see _joined
# A region (vehicle crop or frame) at least this many pixels on its short side gets a second,
# zoomed detector pass when the first finds no plate (smaller ones hold no readable plate).
ZOOM_MIN_SIZE = 160
SLOT_FREE_PENALTY = 0.85  # the slot reader: formats are a mild boost (vanity and unlisted plates exist)
# With no region configured, every built-in format is a (milder) prior: a reading no country's
# format accepts counts this much (an unknown region's plate is not forced into a format).
NO_REGION_FREE_PENALTY = 0.6
# Per character a reading has outside every listed region's alphabet (a US I, O or Q): the
# region never issues it, so such a reading is far less likely than its look-alike's.
OUT_OF_ALPHABET = 0.2
STACKED_SUPPORT = 0.25  # see _stacked
PART_INSIDE, PART_SCORE = 0.4, 0.5  # see _without_parts
# A frame edge or a bolt beside the characters reads as a thin glyph at an end of the plate:
# such a reading (at least this long) that fits no format while the reading without that glyph
# fits one gives the shorter reading at this share of its confidence.
EDGE_GLYPHS, EDGE_MIN_CHARS, EDGE_DROP = "1IJL", 6, 0.9
# With no region configured some country's format accepts almost any shorter reading (the US
# catch-all, Czech mixed slots), so fitting one is weak evidence: the glyph is dropped only when
# the model itself doubts it. On Vietnamese plates (8 characters, formats unknown to the reader)
# dropping a sure leading or trailing 1 broke 8 of 46 reads.
EDGE_SURE = 0.9


class SlotReader(RegionReader):
    """Plate-specific slot model ``model``; ``prior_formats`` are the formats the slot decoder
    prefers (``templates``: as slot classes), ``confirm`` an optional PP-OCRv4 second opinion."""

    def __init__(
        self,
        base: RegionReader,
        model: SlotRecognizer,
        n_slots: int,
        confirm: PaddleRecognizer | None = None,
    ) -> None:
        super().__init__(base.cfg, base.detector, base.formats, base.decoder)
        self.model = model
        # the formats the slot decoder prefers: the configured regions', or with none every
        # known region's at a milder weight (the previous decoder had no prior then)
        self.prior_formats: list[PlateFormat] = self.formats or ([] if self.decoder == "legacy" else known_formats())
        self.templates = SlotTemplates(self.prior_formats, n_slots, own_alphabets=bool(self.formats))
        self.confirm = confirm

    def read_region(self, img: np.ndarray, in_vehicle: bool) -> list[PlateRead]:
        """Slot reader: every detected quad is read once (one batched call, ~2 ms a crop), the
        plates are ranked by plate-ness, and the best one is read again from a few more crops;
        tiles only when no quad scored confidently."""
        cfg = self.cfg
        quads = self.detector.detect(img, cfg.detect_threshold, tiles=False, max_plates=cfg.max_plates)
        quads = [q for q in quads if q.score >= MIN_RELATIVE_DET * quads[0].score]
        quads += _joined(quads)
        # the detector's best quad (usually the plate) is read from the wider crop too in the
        # same call, so a confident best plate costs one model call
        reads = self._read_quads_slots(
            img, quads, in_vehicle, [(SLOT_BASE, SLOT_WIDE)] + [(SLOT_BASE,)] * (len(quads) - 1)
        )
        if cfg.tiles and max((r.score for r in reads), default=0.0) < CONFIDENT and self.detector.is_large(img):
            seen = [q.box for q in quads]
            more = self.detector.detect(
                img, cfg.detect_threshold, tiles=True, only_tiles=True, max_plates=cfg.max_plates
            )
            new = [q for q in more if all(box_iou(q.box, b) < 0.5 for b in seen)]
            reads += self._read_quads_slots(img, new, in_vehicle, [(SLOT_BASE,)] * len(new))
        if (
            self.decoder != "legacy"
            and max((r.score for r in reads), default=0.0) < MIN_PLATE_SCORE
            and min(img.shape[:2]) >= ZOOM_MIN_SIZE
        ):
            reads += self._zoom_pass(img, quads, in_vehicle)
        if self.decoder != "legacy":  # text lines stacked on a taller one: frame or slogan, not the plate
            factors = [_stacked(r, reads) for r in reads]
            for r, f in zip(reads, factors):
                r.score *= f
        reads.sort(key=lambda r: (-r.score, -r.detector_score))
        # the best plate is read from the other crops too (a quad that cut off an end character
        # or the tops of the characters) when its read is doubtful, and when its read is short,
        # with a line added above and below (the detector boxed one line of a two-line plate)
        if reads:
            top = reads[0]
            margins: tuple[tuple[float, float, float, float], ...] = ()
            if _model_confidence(top, self.decoder) < DOUBTFUL:
                margins += tuple(m for m in (*SLOT_MARGINS, *SLOT_JITTER) if m not in top._outs)
            if not top.candidates or len(top.text) <= SHORT_READ:
                margins += TWO_LINE_MARGINS
            if margins:
                reads[0] = self._read_quads_slots(
                    img, [PlateQuad(top.corners, top.detector_score)], in_vehicle, [margins], [top]
                )[0]
                if self.decoder != "legacy":
                    reads[0].score *= _stacked(reads[0], reads)
        # the slot model answers for any crop: a region it reads with next to no confidence is
        # not a plate (blank, noise, a rotated frame), and is not returned
        reads = [r for r in reads if r.candidates and r.score >= MIN_PLATE_SCORE]
        if self.decoder != "legacy":
            reads = _without_parts(reads)
        reads.sort(key=lambda r: -r.score)
        if self.decoder != "legacy":
            # the formats chose the reading; its published confidence is the model's, and the
            # other candidates keep their rank and their ratio to it
            for r in reads:
                scale = 1.0 / r.candidates[0].prior
                r.candidates = [replace(c, confidence=min(1.0, c.confidence * scale), prior=1.0) for c in r.candidates]
        if reads and self.confirm is not None and reads[0].confidence < cfg.confirm_below:
            self._confirm(img, reads[0])
        return reads

    def _zoom_pass(self, img: np.ndarray, seen: list[PlateQuad], in_vehicle: bool) -> list[PlateRead]:
        """Second detector pass when the first found no plate: the lower part of the region at a
        higher resolution (small, dark or angled plates score below the floor, or not at all,
        when the whole region is shrunk to the detector's 320x240 input)."""
        h, w = img.shape[:2]
        quads = self.detector.detect(
            img, self.cfg.detect_threshold, max_plates=self.cfg.max_plates, windows=self.detector.zoom_windows(w, h)
        )
        new = [q for q in quads if all(box_iou(q.box, b.box) < 0.5 for b in seen)]
        return self._read_quads_slots(img, new, in_vehicle, [(SLOT_BASE, SLOT_WIDE)] + [(SLOT_BASE,)] * (len(new) - 1))

    def _confirm(self, img: np.ndarray, read: PlateRead) -> None:
        """Second opinion of PP-OCRv4 on a doubtful slot read: every text's confidence becomes
        the mean of both readers' (0 where one did not propose it), so agreement wins."""
        assert self.confirm is not None
        crop = warp_quad(img, grow_quad(read.corners, *SLOT_BASE))
        other = self._rank(self._decode([self.confirm.recognize([crop])[0]]))
        mine = {c.text: c for c in read.candidates}
        theirs = {c.text: c for c in other}
        merged = []
        for text in {**mine, **theirs}:
            base = mine.get(text) or theirs[text]
            conf = (mine[text].confidence if text in mine else 0.0) + (
                theirs[text].confidence if text in theirs else 0.0
            )
            merged.append(replace(base, confidence=conf / 2))
        merged.sort(key=lambda c: -c.confidence)
        read.candidates = merged[: self.cfg.top_n]

    def _read_quads_slots(
        self,
        img: np.ndarray,
        quads: list[PlateQuad],
        in_vehicle: bool,
        margins: list[tuple[tuple[float, float, float, float], ...]],
        prior: list[PlateRead] | None = None,
    ) -> list[PlateRead]:
        """Read each quad from one crop per margin of its ``margins`` (left, top, right, bottom),
        all in one batched call;
        candidates of ``prior`` reads of the same quads are ranked together with the new ones.
        A two-line crop is read whole: the model reads stacked lines in order."""
        if self.model is None or not quads:
            return []
        ih, iw = img.shape[:2]
        crops = [warp_quad(img, grow_quad(q.corners, *m)) for q, ms in zip(quads, margins) for m in ms]
        outs = iter(self.model.recognize(crops))
        reads = []
        for i, q in enumerate(quads):
            seen: dict = dict(prior[i]._outs) if prior else {}
            for m in margins[i]:
                seen[m] = next(outs)
            ranked = self._rank(self._slot_candidates(seen), by_length=True)
            w, h = quad_size(q.corners)
            pos = position_factor(q.box, (iw, ih)) if in_vehicle else 1.0
            top = ranked[0] if ranked else None
            score = plate_score(top.confidence, len(top.text), q.score, w / max(h, 1e-6), pos) if top else 0.0
            if top and self.decoder != "legacy":
                score *= mix_factor(top.text)
            box = q.box / np.array([iw, ih, iw, ih], dtype=np.float32)
            read = PlateRead(q.corners, box, q.score, ranked, score)
            read._outs = seen
            reads.append(read)
        return reads

    def _slot_candidates(self, outs: dict) -> list[Candidate]:
        """Candidates of one plate from its crops' outputs (margins -> SlotOutput).

        The base crop's per-slot probabilities are averaged with those of its test-time
        variants (margins moved a little) that read as many characters: they saw the same
        characters, and one crop's look-alike confusion (O/D, P/J) is outvoted. The wide and
        tall crops are there to show a character the quad cut off: only a reading of theirs
        with another length than the base's is a different reading, ranked on its own (an
        equally long one would just add a noisier vote)."""
        base = outs.get(SLOT_BASE)
        if base is None:
            return [c for out in outs.values() for c in self._decode_slots(out)]
        n = len(base.greedy()[0])
        same = [base.probs, *(outs[m].probs for m in SLOT_JITTER if m in outs and len(outs[m].greedy()[0]) == n)]
        cands = self._decode_slots(SlotOutput(np.mean(same, axis=0)) if len(same) > 1 else base)
        for m, out in outs.items():
            if m not in SLOT_JITTER and m != SLOT_BASE and len(out.greedy()[0]) != n:
                cands += self._decode_slots(out)
        return cands

    def _decode_slots(self, out: SlotOutput) -> list[Candidate]:
        """Free readings plus the format-constrained ones. Every free reading also stays at a
        penalty (and a much larger one per character no listed region issues), so a format can
        raise a reading above the free level but never push a clear read below it: a loose
        format that accepts a reading (and so scores it at its own low weight) does not make a
        reading of a stricter format win by default."""
        cands = decode_slots(out, self.cfg.top_n)
        formats = self.prior_formats
        if not formats:
            return cands
        if self.decoder == "legacy":
            cands = [c for c in cands if not any(f.match(c.text) for f in formats)]
            for c in cands:
                c.confidence *= SLOT_FREE_PENALTY
            return cands + decode_slot_formats_legacy(out, self.templates, self.cfg.top_n)
        penalty = SLOT_FREE_PENALTY if self.formats else NO_REGION_FREE_PENALTY
        alphabet = self.templates.alphabet
        sure = 1.0 if self.formats else EDGE_SURE
        edge = [e for c in cands for e in _edge_dropped(c, formats, sure)]
        for c in cands:
            c.prior = penalty * OUT_OF_ALPHABET ** sum(ch not in alphabet for ch in c.text)
            c.confidence *= c.prior
        return cands + edge + decode_slot_formats(out, self.templates, self.cfg.top_n)


def _model_confidence(read: PlateRead, decoder: str) -> float:
    """The best reading's confidence without the formats' prior (the previous decoder: with
    it): a reading a format merely ranks lower is not doubtful to the model."""
    if not read.candidates:
        return 0.0
    best = read.candidates[0]
    return best.confidence if decoder == "legacy" else best.confidence / best.prior


def _edge_dropped(cand: Candidate, formats: list[PlateFormat], sure: float = 1.0) -> list[Candidate]:
    """``cand`` without a thin first or last character (``EDGE_GLYPHS``: a frame edge or a bolt
    read as a 1 or an I) when the reading fits no format and the shorter one does, at
    ``EDGE_DROP`` of its confidence (above the free penalty, so the shorter reading wins). A
    glyph read with a confidence of ``sure`` or more is kept."""
    text = cand.text
    if len(text) < EDGE_MIN_CHARS or any(f.match(text) for f in formats):
        return []
    out = []
    confs = cand.char_confidences
    ends = ((text[0], text[1:], confs[1:], confs[0]), (text[-1], text[:-1], confs[:-1], confs[-1]))
    for dropped, short, kept, conf in ends:
        doubted = dropped in EDGE_GLYPHS and conf < sure
        fit = next((f for f in formats if f.match(short)), None) if doubted else None
        if fit is not None:
            out.append(Candidate(short, cand.confidence * EDGE_DROP, list(kept), fit.name, EDGE_DROP))
    return out


def _stacked(read: PlateRead, reads: list[PlateRead]) -> float:
    """``stacked_factor`` of a read against the other reads that are a plausible text line: read
    with at least ``STACKED_SUPPORT`` of its plate-ness (a loose quad read as noise is not)."""
    others = [r.box for r in reads if r is not read and r.candidates and r.score >= STACKED_SUPPORT * read.score]
    return stacked_factor(read.box, others)


def _without_parts(reads: list[PlateRead]) -> list[PlateRead]:
    """Reads less those that are one line of another read's plate: a read with at least
    ``PART_INSIDE`` of its box inside a longer read's box, whose text that read's contains, and
    which that read matches in plate-ness within ``PART_SCORE`` (the detector boxed a line of a
    two-line plate as well as the whole plate; one plate, one read)."""

    def part_of(b: PlateRead, a: PlateRead) -> bool:
        if a is b or len(a.text) <= len(b.text) or b.text not in a.text or a.score < PART_SCORE * b.score:
            return False
        w, h = b.box[2] - b.box[0], b.box[3] - b.box[1]
        iw = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])
        ih = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
        return w > 0 and h > 0 and iw > 0 and ih > 0 and iw * ih >= PART_INSIDE * w * h

    return [b for b in reads if not any(part_of(b, a) for a in reads)]


def _joined(quads: list[PlateQuad]) -> list[PlateQuad]:
    """One quad over each pair of quads side by side on one text line: a plate with a wide gap
    (Czech ``1B7 0440``, Slovak, German plates) is often boxed as two quads, one per part, and
    neither reads the whole plate. The pair must overlap vertically by most of the smaller
    height, have heights within 1.5x of each other and a horizontal gap of at most one height;
    the joined quad is read like any other and wins only by reading better."""
    out = []
    for i, a in enumerate(quads):
        for b in quads[i + 1 :]:
            left, right = (a, b) if a.box[0] <= b.box[0] else (b, a)
            lb, rb = left.box, right.box
            hl, hr = lb[3] - lb[1], rb[3] - rb[1]
            if min(hl, hr) <= 0 or max(hl, hr) > JOIN_HEIGHT_RATIO * min(hl, hr):
                continue
            overlap_y = min(lb[3], rb[3]) - max(lb[1], rb[1])
            gap = rb[0] - lb[2]
            overlap_x = -gap
            narrower = min(lb[2] - lb[0], rb[2] - rb[0])
            if overlap_y < JOIN_OVERLAP * min(hl, hr) or gap > max(hl, hr) or overlap_x > 0.5 * narrower:
                continue
            lc, rc = left.corners, right.corners
            corners = np.stack([lc[0], rc[1], rc[2], lc[3]]).astype(np.float32)
            out.append(PlateQuad(corners, max(a.score, b.score)))
    return out
