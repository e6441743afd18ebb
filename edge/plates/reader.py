"""``PlateReader``: find plates in a frame or vehicle crop and read them.

Default reader (``ocr_model: cct-xs-v1-global-plate-ocr``, a plate-specific slot model): LPD-YuNet
quads (low score floor, best few) -> one batched slot-model call over a padded crop of every
quad plus a wider crop of the detector's best one -> free and (optional) format-masked slot
decoding -> plates ranked by plate-ness (read confidence x character count, aspect, detector
score, position in the vehicle box) -> a doubtful best plate read again from test-time
variants of its crop (slot probabilities averaged) and a taller crop, and with a line added
above/below when its read is short (two-line plates). See docs/plates.md.

PP-OCRv4 reader (``ocr_model: ppocr-v4``): each quad -> a couple of rectified crops with
different margins (two-line plates are split into lines) -> one batched PP-OCRv4 recognition
call -> free and format-constrained CTC decoding -> the most confident plausible reading per
plate. Large frames with no confident read are retried tile by tile (both readers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edge.errors import ModelError
from edge.inference.backends import pick_backend
from edge.inference.shared import ensure_model_once, shared_backend
from edge.plates.config import PlatesConfig
from edge.plates.decode import Candidate, decode_formats, decode_free
from edge.plates.detect import PlateQuad, YuNetPlateDetector
from edge.plates.formats import PlateFormat, compile_formats, known_formats
from edge.plates.geometry import box_iou
from edge.plates.lprnet import LprnetRecognizer, lprnet_core
from edge.plates.ocr import CtcOutput, PaddleRecognizer
from edge.plates.plateness import chars_factor, mix_factor, plate_score, position_factor, stacked_factor
from edge.plates.rectify import expand_quad, grow_quad, quad_size, warp_quad
from edge.plates.refine import TextLineRefiner
from edge.plates.slots import (
    SlotOutput,
    SlotRecognizer,
    SlotTemplates,
    decode_slot_formats,
    decode_slot_formats_legacy,
    decode_slots,
)

log = logging.getLogger("edge.plates")

# (horizontal, vertical) margins around the detected quad, as fractions of its size. The
# tight one suits good detections; the loose one recovers characters a partial quad cut off.
CROP_MARGINS = ((0.04, 0.10), (0.15, 0.20))
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
MIN_PLATE_SCORE = 0.05  # slot reads below this plate-ness are dropped (see _read_region_slots)
TWO_LINE_MARGINS = ((0.15, 1.4, 0.15, 0.2), (0.15, 0.2, 0.15, 1.4))
TWO_LINE_ASPECT = 2.2  # plates narrower than this (w/h) are read as two lines
JOIN_OVERLAP, JOIN_HEIGHT_RATIO = 0.6, 1.5  # see _joined
CONFIDENT = 0.6  # a plate read above this ends the search (weaker quads, tiles)
# A region (vehicle crop or frame) at least this many pixels on its short side gets a second,
# zoomed detector pass when the first finds no plate (smaller ones hold no readable plate).
ZOOM_MIN_SIZE = 160
FREE_READ_PENALTY = 0.5  # a read that fits no configured format counts half
SLOT_FREE_PENALTY = 0.85  # the slot reader: formats are a mild boost (vanity and unlisted plates exist)
# With no region configured, every built-in format is a (milder) prior: a reading no country's
# format accepts counts this much (an unknown region's plate is not forced into a format).
NO_REGION_FREE_PENALTY = 0.6
# Per character a reading has outside every listed region's alphabet (a US I, O or Q): the
# region never issues it, so such a reading is far less likely than its look-alike's.
OUT_OF_ALPHABET = 0.2
DECODERS = ("constrained", "legacy")
COMPLETE_RATIO = 0.85  # see _prefer_complete
SUPPORT_BONUS, MAX_SUPPORT = 0.01, 5  # see _rank
STACKED_SUPPORT = 0.25  # see _stacked
# A frame edge or a bolt beside the characters reads as a thin glyph at an end of the plate:
# such a reading (at least this long) that fits no format while the reading without that glyph
# fits one gives the shorter reading at this share of its confidence.
EDGE_GLYPHS, EDGE_MIN_CHARS, EDGE_DROP = "1IJL", 6, 0.9


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


def _paddle(model: tuple, backend: str | None, threads: int, device: str, precision: str) -> PaddleRecognizer:
    """PP-OCRv4 recogniser of a pulled ppocr-v4 model (its character list is ONNX metadata)."""
    ocr_m, ocr_dir = model
    kind = pick_backend(list(ocr_m.backends), backend)
    be = shared_backend(kind, ocr_dir / ocr_m.entry, threads, device, precision)
    key = ocr_m.head.get("metadata_key", "character")
    chars = be.metadata().get(key, "")
    if not chars and kind != "onnx":  # OpenVINO does not expose ONNX metadata
        chars = shared_backend("onnx", ocr_dir / ocr_m.entry, 1, "CPU").metadata().get(key, "")
    if not chars:
        raise ModelError(f"{ocr_m.name}: character list missing from the model metadata")
    return PaddleRecognizer(be, chars.split("\n"))


class PlateReader:
    """Licence-plate detector + reader built from the models named in ``cfg``."""

    def __init__(
        self,
        cfg: PlatesConfig | None = None,
        threads: int = 2,
        device: str = "CPU",
        *,
        precision: str = "auto",
        cache_dir: Path | None = None,
        mirror: str | None = None,
        decoder: str = "constrained",
    ):
        """``decoder``: ``constrained`` (format-constrained slot decoding with region alphabets,
        and every known format as a mild prior when no region is set) or ``legacy`` (the
        previous decoder and formats, for side-by-side benchmarks)."""
        if decoder not in DECODERS:
            raise ValueError(f"plate decoder {decoder!r}: expected one of {', '.join(DECODERS)}")
        self.decoder = decoder
        self.cfg = cfg or PlatesConfig()
        det_m, det_dir = ensure_model_once(self.cfg.detector_model, cache_dir=cache_dir, mirror=mirror)
        if det_m.input is None or det_m.head.get("type") != "yunet_plate":
            raise ModelError(f"{det_m.name} is not a YuNet plate detector")
        ocr_m, ocr_dir = ensure_model_once(self.cfg.ocr_model, cache_dir=cache_dir, mirror=mirror)
        if ocr_m.head.get("type") not in ("ctc", "lprnet", "plate_slots"):
            raise ModelError(
                f"{ocr_m.name}: not a plate reader "
                "(cct-xs-v1-global-plate-ocr, ppocr-v4 or license-plate-recognition-barrier-0001)"
            )
        det_kind = pick_backend(list(det_m.backends), self.cfg.backend)
        ocr_kind = pick_backend(list(ocr_m.backends), self.cfg.backend)
        det_be = shared_backend(det_kind, det_dir / det_m.entry, threads, device, precision)
        self.backend = det_kind
        self.detector = YuNetPlateDetector(det_be, det_m.input.size, det_m.head, det_m.input.name)
        rec_be = shared_backend(ocr_kind, ocr_dir / ocr_m.entry, threads, device, precision)
        self.formats = compile_formats(self.cfg.regions, legacy=decoder == "legacy")
        self.refiner = None
        self.lprnet: LprnetRecognizer | None = None
        self.slots: SlotRecognizer | None = None
        if ocr_m.head.get("type") == "plate_slots":  # plate-specific slot reader (the default)
            size = ocr_m.input.size if ocr_m.input is not None else (128, 64)
            pad = str(ocr_m.head.get("pad_char", "_"))
            self.slots = SlotRecognizer(rec_be, ocr_m.read_labels(ocr_dir), size, pad)
            # the formats the slot decoder prefers: the configured regions', or with none every
            # known region's at a milder weight (the previous decoder had no prior then)
            self.prior_formats: list[PlateFormat] = self.formats or ([] if decoder == "legacy" else known_formats())
            self.slot_templates = SlotTemplates(
                self.prior_formats, int(ocr_m.head.get("slots", 9)), own_alphabets=bool(self.formats)
            )
            self.confirm: PaddleRecognizer | None = None
            if self.cfg.confirm_below > 0:  # opt-in second opinion on doubtful reads
                self.confirm = _paddle(
                    ensure_model_once("ppocr-v4", cache_dir=cache_dir, mirror=mirror),
                    self.cfg.backend,
                    threads,
                    device,
                    precision,
                )
            return
        if ocr_m.head.get("type") == "lprnet":  # Chinese plates: its own symbols, no CTC formats
            self.lprnet = LprnetRecognizer(rec_be, ocr_m.read_labels(ocr_dir))
            return
        key = ocr_m.head.get("metadata_key", "character")
        chars = rec_be.metadata().get(key, "")
        if not chars and ocr_kind != "onnx":  # OpenVINO does not expose ONNX metadata
            chars = shared_backend("onnx", ocr_dir / ocr_m.entry, 1, "CPU").metadata().get(key, "")
        if not chars:
            raise ModelError(f"{ocr_m.name}: character list missing from the model metadata")
        self.recognizer = PaddleRecognizer(rec_be, chars.split("\n"))
        det_file = ocr_m.head.get("det_entry")
        if det_file:  # PP-OCR text detector shipped with the recogniser: refines plate quads
            self.refiner = TextLineRefiner(shared_backend(ocr_kind, ocr_dir / det_file, threads, device, precision))

    # -- public -------------------------------------------------------------------------------

    def read(self, image_bgr: np.ndarray, box: np.ndarray | list[float] | None = None) -> list[PlateRead]:
        """Plates in a BGR image (or in the normalised ``xyxy`` vehicle ``box`` of it), most
        confident first. Bad input (empty, tiny, blank) gives an empty list, not an error."""
        img = np.asarray(image_bgr)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        if img.ndim != 3 or img.shape[0] < 8 or img.shape[1] < 8 or img.shape[2] < 3:
            return []
        img = np.ascontiguousarray(img[:, :, :3], dtype=np.uint8)
        h, w = img.shape[:2]
        x0 = y0 = 0
        if box is not None:
            bx = np.asarray(box, dtype=np.float64).reshape(4)
            if not np.all(np.isfinite(bx)):
                return []
            bx = np.clip(bx, 0.0, 1.0)
            x0, y0 = int(bx[0] * w), int(bx[1] * h)
            x1, y1 = int(np.ceil(bx[2] * w)), int(np.ceil(bx[3] * h))
            if x1 - x0 < 8 or y1 - y0 < 8:
                return []
            img = img[y0:y1, x0:x1]
        reads = self._read_region_slots(img, box is not None) if self.slots else self._read_region(img)
        for r in reads:  # back to full-image coordinates
            r.corners = r.corners + np.array([x0, y0], dtype=np.float32)
            r.box = (r.box * np.array([img.shape[1], img.shape[0]] * 2) + [x0, y0, x0, y0]) / [w, h, w, h]
            r.box = np.clip(r.box, 0.0, 1.0).astype(np.float32)
        return reads

    # -- internals ----------------------------------------------------------------------------

    def _read_region(self, img: np.ndarray) -> list[PlateRead]:
        cfg = self.cfg
        quads = self.detector.detect(img, cfg.detect_threshold, tiles=False, max_plates=cfg.max_plates)
        # Best quad first; weaker quads, then tiles, only while nothing was read confidently:
        # most images then cost one detection, one refinement and one recognition call.
        reads: list[PlateRead] = []
        for q in quads:
            if _best(reads) >= CONFIDENT:
                break
            reads.append(self._read_quad(img, q))
        if cfg.tiles and _best(reads) < CONFIDENT and self.detector.is_large(img):
            seen = [q.box for q in quads]
            for q in self.detector.detect(
                img, cfg.detect_threshold, tiles=True, only_tiles=True, max_plates=cfg.max_plates
            ):
                if _best(reads) >= CONFIDENT:
                    break
                if all(box_iou(q.box, b) < 0.5 for b in seen):
                    reads.append(self._read_quad(img, q))
        reads = [r for r in reads if r.candidates]
        reads.sort(key=lambda r: -r.confidence)
        return reads

    def _read_region_slots(self, img: np.ndarray, in_vehicle: bool) -> list[PlateRead]:
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
        if self.slots is None or not quads:
            return []
        ih, iw = img.shape[:2]
        crops = [warp_quad(img, grow_quad(q.corners, *m)) for q, ms in zip(quads, margins) for m in ms]
        outs = iter(self.slots.recognize(crops))
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
            return cands + decode_slot_formats_legacy(out, self.slot_templates, self.cfg.top_n)
        penalty = SLOT_FREE_PENALTY if self.formats else NO_REGION_FREE_PENALTY
        alphabet = self.slot_templates.alphabet
        edge = [e for c in cands for e in _edge_dropped(c, formats)]
        for c in cands:
            c.prior = penalty * OUT_OF_ALPHABET ** sum(ch not in alphabet for ch in c.text)
            c.confidence *= c.prior
        return cands + edge + decode_slot_formats(out, self.slot_templates, self.cfg.top_n)

    def _lines(self, img: np.ndarray, corners: np.ndarray, mx: float, my: float) -> list[list[np.ndarray]]:
        """The rectified crop as one line, plus split in two lines when the plate is squarish
        (e.g. Brazilian motorcycle plates: letters above, digits below)."""
        crop = warp_quad(img, expand_quad(corners, mx, my))
        w, h = quad_size(corners)
        out = [[crop]]
        if h > 0 and w / h < TWO_LINE_ASPECT:
            ch = crop.shape[0]
            out.append([crop[: int(ch * 0.55)], crop[int(ch * 0.45) :]])
        return out

    def _read_crops(self, crops: list[list[np.ndarray]]) -> list[Candidate]:
        outs = iter(self.recognizer.recognize([line for crop in crops for line in crop]))
        cands: list[Candidate] = []
        for crop in crops:
            cands += self._decode([next(outs) for _ in crop])
        return cands

    def _read_quad(self, img: np.ndarray, quad: PlateQuad) -> PlateRead:
        """Read one quad from two crops in one batch -- the DBNet-refined text line (or, when
        DBNet finds none, a loose crop) and the detector's own quad with tight margins -- and
        rank all their readings together: each crop fixes the other's typical failure
        (partial quad, junk from a seal or city strip)."""
        ih, iw = img.shape[:2]
        box = quad.box / np.array([iw, ih, iw, ih], dtype=np.float32)
        if self.lprnet is not None:
            return PlateRead(quad.corners, box, quad.score, self._read_lprnet(img, quad))
        line = self.refiner.refine(img, quad.corners) if self.refiner is not None else None
        crops = self._lines(img, quad.corners, *CROP_MARGINS[0])
        crops += (
            self._lines(img, line, 0.0, 0.0) if line is not None else self._lines(img, quad.corners, *CROP_MARGINS[1])
        )
        return PlateRead(quad.corners, box, quad.score, self._rank(self._read_crops(crops)))

    def _read_lprnet(self, img: np.ndarray, quad: PlateQuad) -> list[Candidate]:
        """LPRNet gives no probabilities: the read's confidence is the plate detector's score."""
        text = self.lprnet.read(warp_quad(img, expand_quad(quad.corners, *CROP_MARGINS[1]))) if self.lprnet else ""
        core = lprnet_core(text)
        if not self.cfg.min_chars <= len(core) <= self.cfg.max_chars:
            return []
        return [Candidate(text, float(quad.score))]

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


def _model_confidence(read: PlateRead, decoder: str) -> float:
    """The best reading's confidence without the formats' prior (the previous decoder: with
    it): a reading a format merely ranks lower is not doubtful to the model."""
    if not read.candidates:
        return 0.0
    best = read.candidates[0]
    return best.confidence if decoder == "legacy" else best.confidence / best.prior


def _edge_dropped(cand: Candidate, formats: list[PlateFormat]) -> list[Candidate]:
    """``cand`` without a thin first or last character (``EDGE_GLYPHS``: a frame edge or a bolt
    read as a 1 or an I) when the reading fits no format and the shorter one does, at
    ``EDGE_DROP`` of its confidence (above the free penalty, so the shorter reading wins)."""
    text = cand.text
    if len(text) < EDGE_MIN_CHARS or any(f.match(text) for f in formats):
        return []
    out = []
    confs = cand.char_confidences
    for dropped, short, kept in ((text[0], text[1:], confs[1:]), (text[-1], text[:-1], confs[:-1])):
        fit = next((f for f in formats if f.match(short)), None) if dropped in EDGE_GLYPHS else None
        if fit is not None:
            out.append(Candidate(short, cand.confidence * EDGE_DROP, list(kept), fit.name, EDGE_DROP))
    return out


def _stacked(read: PlateRead, reads: list[PlateRead]) -> float:
    """``stacked_factor`` of a read against the other reads that are a plausible text line: read
    with at least ``STACKED_SUPPORT`` of its plate-ness (a loose quad read as noise is not)."""
    others = [r.box for r in reads if r is not read and r.candidates and r.score >= STACKED_SUPPORT * read.score]
    return stacked_factor(read.box, others)


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


def _best(reads: list[PlateRead]) -> float:
    return max((r.confidence for r in reads), default=0.0)
