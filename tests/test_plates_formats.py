"""Region formats as data and format-constrained slot decoding, on crafted probability tables
(no model): what a region's formats and alphabet make of a reading, and what they must not."""

from __future__ import annotations

import numpy as np
import pytest

from edge.plates import PlateReader, PlatesConfig
from edge.plates.decode import Candidate
from edge.plates.formats import REGION_FORMATS, compile_formats, known_formats
from edge.plates.ocr import ALPHABET
from edge.plates.plateness import STACKED_FACTOR, mix_factor, stacked_factor
from edge.plates.read_slots import EDGE_DROP, EDGE_SURE, SlotReader, _edge_dropped
from edge.plates.slots import (
    MIXED_SLOT,
    PAD,
    SlotOutput,
    SlotTemplates,
    decode_slot_formats,
    decode_slot_formats_legacy,
    decode_slots,
)


def slots(text: str, alt: dict[int, dict[str, float]] | None = None, conf: float = 0.95, n: int = 9) -> SlotOutput:
    """A slot table reading ``text`` (pads after it) at ``conf`` per slot; ``alt`` sets other
    characters' probabilities at a slot (the rest of the slot's mass spread evenly)."""
    p = np.zeros((n, PAD + 1), dtype=np.float32)
    for i in range(n):
        probs = {text[i] if i < len(text) else "_": conf}
        probs.update((alt or {}).get(i, {}))
        rest = max(0.0, 1.0 - sum(probs.values())) / (PAD + 1 - len(probs))
        p[i] = rest
        for ch, q in probs.items():
            p[i, PAD if ch == "_" else ALPHABET.index(ch)] = q
    return SlotOutput(p)


def top(out: SlotOutput, regions: list[str]) -> str:
    return decode_slot_formats(out, SlotTemplates(compile_formats(regions)))[0].text


# -- the US formats ----------------------------------------------------------------------------


def test_us_alphabet_has_no_i_o_q() -> None:
    us = compile_formats(["us"])
    assert {f.alphabet for f in us} == {"".join(c for c in ALPHABET if c not in "IOQ")}
    for text in ("ABI1234", "7ABO123", "QAB1234", "ABC1O34"):  # any I, O or Q: no US format
        assert not any(f.match(text) for f in us), text


@pytest.mark.parametrize(
    ("text", "scheme"),
    [
        ("7ABC123", r"[0-9][A-HJ-NPR-Z]{3}[0-9]{3}"),
        ("ABC1234", r"[A-HJ-NPR-Z]{3}[0-9]{4}"),
        ("ABC123", r"[A-HJ-NPR-Z]{3}[0-9]{3}"),
        ("123ABC", r"[0-9]{3}[A-HJ-NPR-Z]{3}"),
        ("AB12345", r"[A-HJ-NPR-Z]{2}[0-9]{5}"),
        ("1AB2345", r"[0-9][A-HJ-NPR-Z]{2}[0-9]{4}"),
        ("123ABCD", r"[0-9]{3}[A-HJ-NPR-Z]{4}"),
        ("ABCD12", r"[A-HJ-NPR-Z]{4}[0-9]{2}"),
        ("A12BCD", r"[A-HJ-NPR-Z][0-9]{2}[A-HJ-NPR-Z]{3,4}"),
        ("12A3456", r"[0-9]{2,3}[A-HJ-NPR-Z][0-9]{3,4}"),
        ("4GTW7", r"[0-9A-HJ-NPR-Z]{5,7}"),
    ],
)
def test_each_us_scheme(text: str, scheme: str) -> None:
    """Every built-in US format accepts its example, and the first format that does is it."""
    us = compile_formats(["us"])
    assert next(f.pattern.pattern for f in us if f.match(text)) == scheme
    assert all(f.templates for f in us)  # all expandable: each can constrain decoding


def test_a_region_entry_can_carry_a_weight(monkeypatch: pytest.MonkeyPatch) -> None:
    """A site can add a region (or a format) as data; ``(regex, weight)`` makes it win only
    near ties."""
    monkeypatch.setitem(REGION_FORMATS, "xx", [r"[A-Z]{2}[0-9]{3}", (r"[A-Z]{2}[0-9A-Z]{3}", 0.5)])
    strict, loose = compile_formats(["xx"])
    assert (strict.weight, loose.weight) == (1.0, 0.5) and strict.name == loose.name == "xx"


def test_loose_formats_weigh_less() -> None:
    """Slots that allow letters and digits alike tell little: Slovenia's loose format counts
    less than Brazil's fixed letter and digit slots."""
    si = SlotTemplates(compile_formats(["si"]))
    br = SlotTemplates(compile_formats(["br"]))
    assert si.weights.max() <= MIXED_SLOT**2 and set(br.weights) == {1.0}


# -- format-constrained decoding ----------------------------------------------------------------


def test_a_character_the_region_never_issues_is_read_as_its_lookalike() -> None:
    """A confident I on a US plate is a 1 (no US standard plate has an I), and an O a 0, in
    letter-digit positions alike; the previous decoder kept the I (its US catch-all accepted
    any characters)."""
    out = slots("7ABCI23", {4: {"1": 0.04}}, conf=0.9)
    assert decode_slots(out)[0].text == "7ABCI23"  # what the model says
    assert top(out, ["us"]) == "7ABC123"
    legacy = decode_slot_formats_legacy(out, SlotTemplates(compile_formats(["us"], legacy=True)))
    assert legacy[0].text == "7ABCI23"
    assert top(slots("ABCO234"), ["us"]) == "ABC0234"
    assert top(slots("4GOW7"), ["us"]) == "4G0W7"  # a serial of no scheme: the alphabet still holds


def test_a_position_settles_a_lookalike_only_in_doubt() -> None:
    """B where California's scheme has a digit: an 8 when the model gives the 8 a fair share,
    but a clearly read B stays (the catch-all accepts it: vanity and other serials exist)."""
    assert top(slots("7ABCB23", {4: {"8": 0.4}}, conf=0.55), ["us"]) == "7ABC823"
    assert top(slots("7ABCB23", {4: {"8": 0.02}}, conf=0.95), ["us"]) == "7ABCB23"


def test_a_template_pays_for_dropping_or_adding_a_character() -> None:
    """Slots after a template's length must hold the pad: a confident 8th character is not
    dropped to fit a 7-character format, and a 7-character read is not padded to 8."""
    cands = decode_slot_formats(slots("ABC12345"), SlotTemplates(compile_formats([r"[A-Z]{3}[0-9]{4}"])))
    assert all(c.confidence < 0.01 for c in cands)
    cands = decode_slot_formats(slots("ABC1234"), SlotTemplates(compile_formats([r"[A-Z]{3}[0-9]{5}"])))
    assert all(c.confidence < 0.01 for c in cands)
    # and a template two characters off is not scored at all
    assert decode_slot_formats(slots("ABC1234"), SlotTemplates(compile_formats([r"[A-Z]{3}[0-9]{6}"]))) == []


def test_best_reading_under_each_template_is_ranked() -> None:
    """Two formats that disagree on a doubtful slot each give their best reading, ranked by
    probability: the one whose constraint costs less wins, the other is the runner-up."""
    out = slots("AB1234", {2: {"I": 0.35}}, conf=0.6)
    cands = decode_slot_formats(out, SlotTemplates(compile_formats([r"[A-Z]{3}[0-9]{3}", r"[A-Z]{2}[0-9]{4}"])))
    assert [c.text for c in cands[:2]] == ["AB1234", "ABI234"]
    assert cands[0].format == r"[A-Z]{2}[0-9]{4}" and cands[0].confidence > cands[1].confidence
    assert [c.confidence for c in cands] == sorted((c.confidence for c in cands), reverse=True)


def test_no_region_prior_does_not_force_an_unknown_plate() -> None:
    """With no region, every known format is a prior but with the alphabets of all of them: a
    US scheme cannot claim a Brazilian O as its 0 (Brazil issues O), and a doubtful O among
    digits becomes the 0 a known format wants."""
    prior = SlotTemplates(known_formats(), own_alphabets=False)
    assert decode_slot_formats(slots("OKK7448", conf=0.9), prior)[0].text == "OKK7448"
    own = SlotTemplates(known_formats(), own_alphabets=True)  # what it must not do
    assert decode_slot_formats(slots("OKK7448", conf=0.9), own)[0].text == "0KK7448"
    doubtful = slots("ABC12O4", {5: {"0": 0.35}}, conf=0.6)
    assert decode_slot_formats(doubtful, prior)[0].text == "ABC1204"


def test_a_frame_edge_read_as_a_character_is_dropped() -> None:
    """A bolt or the frame's edge beside the plate reads as a 1 or an I at an end: a reading that
    fits no format while the reading without that thin glyph does also gives the shorter one."""
    us = compile_formats(["us"])
    extra = _edge_dropped(Candidate("17ABC123", 0.8, [0.9] * 8), us)
    assert [(c.text, c.confidence) for c in extra] == [("7ABC123", pytest.approx(0.8 * EDGE_DROP))]
    assert [c.text for c in _edge_dropped(Candidate("ABC1234I", 0.8, [0.9] * 8), us)] == ["ABC1234"]
    assert _edge_dropped(Candidate("1ABC234", 0.8, [0.9] * 7), us) == []  # fits: a real 1
    assert _edge_dropped(Candidate("87ABC123", 0.8, [0.9] * 8), us) == []  # an 8 is no frame edge


def test_a_sure_edge_glyph_is_kept_when_no_region_is_set() -> None:
    """With no region some country's format accepts almost any shorter reading, so only a glyph
    the model doubts is dropped: a Vietnamese ``51F22261`` (its formats left out here, as for a
    region the reader does not know) keeps its sure trailing 1, a doubtful one still goes."""
    unknown = [f for f in known_formats() if f.name != "vn"]
    sure = [0.99] * 8
    assert _edge_dropped(Candidate("51F22261", 0.9, sure), unknown, EDGE_SURE) == []
    doubted = [*sure[:7], 0.6]
    assert [c.text for c in _edge_dropped(Candidate("51F22261", 0.5, doubted), unknown, EDGE_SURE)] == ["51F2226"]
    # with a region configured its formats are trusted: the 1 goes however sure it looks
    us = compile_formats(["us"])
    assert [c.text for c in _edge_dropped(Candidate("ABC12341", 0.9, sure), us)] == ["ABC1234"]


def test_no_region_reader_keeps_a_sure_trailing_one(shared_models, tmp_path) -> None:
    """The whole slot decoder with no region: a crafted 8-slot table reading a plate of a region
    no format knows, ending in a sure 1, comes out whole (the previous rule read ``5A88752``-like
    plates one character short); the same table with the 1 in doubt loses it."""
    reader = PlateReader(PlatesConfig(), threads=1, cache_dir=tmp_path, mirror=str(shared_models)).recognizer
    assert isinstance(reader, SlotReader)
    text = "7KA38621"  # fits no built-in format; "7KA3862" fits a Czech and a US one
    assert not any(f.match(text) for f in known_formats())
    assert reader._rank(reader._decode_slots(slots(text, conf=0.97)))[0].text == text
    doubtful = slots(text, {7: {"1": 0.5, "_": 0.45}}, conf=0.97)
    assert reader._rank(reader._decode_slots(doubtful))[0].text == text[:-1]


# -- Vietnam -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["51F88826", "52P5688", "59L251907", "51R29271", "65CA02259", "29BK04366", "99H141390"],
)
def test_each_vn_scheme(text: str) -> None:
    """Cars (one long line or two lines) and motorbikes (series letter + digit, or two letters)."""
    assert any(f.match(text) for f in compile_formats(["vn"]))


def test_vn_series_letters() -> None:
    """Vietnam issues no I, J, O, Q or W in the series: with its formats a doubtful O in the
    series slot of a car plate is read as the letter the slot allows, never as O."""
    vn = compile_formats(["vn"])
    assert not any(ch in vn[0].alphabet for ch in "IJOQW")
    assert not any(f.match(t) for f in vn for t in ["51O88826", "5188826", "51FF888266"])
    out = slots("51O88826", {2: {"D": 0.3}}, conf=0.6)
    assert top(out, ["vn"]) == "51D88826"


def test_unknown_decoder_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="plate decoder 'beam'"):
        PlateReader(decoder="beam")


# -- plate or other text ------------------------------------------------------------------------


def test_text_without_digits_counts_less() -> None:
    assert mix_factor("7ABC123") == mix_factor("1234567") == 1.0
    assert mix_factor("DEALER") < 1.0


def test_a_text_line_stacked_on_a_taller_one_is_frame_or_slogan() -> None:
    plate = np.array([100, 200, 300, 260], dtype=float)  # 60 px tall
    slogan = np.array([120, 262, 280, 290], dtype=float)  # 28 px right under it
    frame = np.array([90, 160, 310, 190], dtype=float)  # 30 px right above it
    assert stacked_factor(slogan, [plate]) == stacked_factor(frame, [plate]) == STACKED_FACTOR
    assert stacked_factor(plate, [slogan, frame]) == 1.0
    loose = np.array([50, 100, 400, 400], dtype=float)  # a large box around the plate
    assert stacked_factor(plate, [loose]) == 1.0
    beside = np.array([320, 210, 400, 250], dtype=float)  # a sticker beside it: not stacked
    assert stacked_factor(beside, [plate]) == 1.0
    far = np.array([120, 500, 280, 528], dtype=float)  # small text far below: not on the plate
    assert stacked_factor(far, [plate]) == 1.0


def test_one_line_of_a_read_two_line_plate_is_not_a_second_plate() -> None:
    """The detector boxes a two-line plate whole and its lower line alone: the line's read
    (``75520``, inside the plate's box, its text part of ``30E75520``) is dropped, however well it
    scores; a read elsewhere, or with other text, or beside a much weaker whole read, stays."""
    from edge.plates.read_slots import _without_parts
    from edge.plates.reading import PlateRead

    def read(text: str, box: list[float], score: float) -> PlateRead:
        return PlateRead(np.zeros((4, 2), np.float32), np.array(box), 0.5, [Candidate(text, 0.9)], score)

    whole = read("30E75520", [0.40, 0.40, 0.50, 0.50], 0.53)
    line = read("75520", [0.40, 0.44, 0.50, 0.52], 0.60)
    other = read("75520", [0.70, 0.40, 0.80, 0.50], 0.60)  # same text, another place
    slogan = read("SUNSHINE", [0.40, 0.44, 0.50, 0.52], 0.20)  # not part of the plate's text
    assert _without_parts([line, whole, other, slogan]) == [whole, other, slogan]
    weak = read("30E75520", [0.40, 0.40, 0.50, 0.50], 0.20)  # under half the line's plate-ness
    assert _without_parts([line, weak]) == [line, weak]
