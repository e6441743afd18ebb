"""Plate logic without models: formats, constrained decoding, consensus, lists, hashing, config."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edge.plates import (
    PlateConsensus,
    PlateConsensusConfig,
    PlateLists,
    PlateListsConfig,
    PlateRead,
    PlatesConfig,
    compile_formats,
    jaro_winkler,
    normalize_plate,
    plate_hash,
    publish_fields,
)
from edge.plates.decode import Candidate, decode_formats, decode_free
from edge.plates.ocr import ALPHABET, CtcOutput


def ctc(text: str, alt: dict[int, tuple[str, float]] | None = None, p: float = 0.95) -> CtcOutput:
    """Synthetic CTC frames: blank, char, char, blank ... ; ``alt`` puts a second guess at a position."""
    frames = []
    blank = np.zeros(37, np.float32)
    blank[0] = 1.0
    frames.append(blank)
    for i, ch in enumerate(text):
        f = np.zeros(37, np.float32)
        f[1 + ALPHABET.index(ch)] = p
        rest = 1.0 - p
        if alt and i in alt:
            other, q = alt[i]
            f[1 + ALPHABET.index(other)] = q
            rest -= q
        f[0] = max(rest, 0.0)
        frames += [f, f, blank]
    return CtcOutput(np.stack(frames))


def test_normalize() -> None:
    assert normalize_plate(" ab-123 cd ") == "AB123CD"
    assert normalize_plate("ＡＢ１２") == "AB12"  # full-width
    assert normalize_plate("АВ·123") == "AB123"  # Cyrillic look-alikes
    assert normalize_plate("京A·12345") == "A12345"


def test_formats_expand_and_match() -> None:
    br = compile_formats(["br"])
    assert [f.match("ABC1234") for f in br] == [True, False]
    assert [f.match("ABC1D23") for f in br] == [False, True]
    assert br[1].templates[0][3] == "0123456789" and br[1].templates[0][4].isalpha()
    custom = compile_formats([r"[A-Z]{2}[0-9]{2,3}"])[0]
    assert {len(t) for t in custom.templates} == {4, 5}
    eu = compile_formats(["eu"])
    assert any(f.match("RK857AI") for f in eu)
    # an unexpandable regex still filters
    weird = compile_formats([r"(?i)ab\d+"])[0]
    assert weird.templates == () and weird.match("ab12")


def test_free_decode_collapses_and_ranks() -> None:
    cands = decode_free(ctc("ABC1234", {3: ("I", 0.04)}), top_n=3)
    assert cands[0].text == "ABC1234"
    assert len(cands[0].char_confidences) == 7
    assert any(c.text == "ABCI234" for c in cands[1:])
    assert cands[0].confidence > cands[1].confidence
    doubled = decode_free(ctc("AA11"))  # blanks keep doubled characters
    assert doubled[0].text == "AA11"


def test_format_decode_fixes_lookalike_only_where_needed() -> None:
    # the recogniser says 0 where a Brazilian letter belongs, and O where a digit belongs
    old_br = compile_formats([r"[A-Z]{3}[0-9]{4}"])
    out = decode_formats(ctc("AY09O34"), old_br, top_n=3)
    assert out[0].text == "AYO9034"
    # with Mercosul too, AYO9O34 is a valid plate as well: O/0 is one glyph, so both are offered
    both = {c.text for c in decode_formats(ctc("AY09O34"), compile_formats(["br"]), top_n=3)}
    assert {"AYO9034", "AYO9O34"} <= both
    # a read that already fits is not changed and keeps its confidence
    ok = decode_formats(ctc("ABC1234"), compile_formats(["br"]))
    assert ok[0].text == "ABC1234"
    assert ok[0].confidence == pytest.approx(decode_free(ctc("ABC1234"))[0].confidence, rel=1e-3)
    # nothing fits: no candidates rather than an invented plate
    assert decode_formats(ctc("XY12"), compile_formats(["br"])) == []


def test_format_decode_prefers_fewer_substitutions() -> None:
    # 5 -> S and 7 -> T would make "RK8STAI" fit sk's second pattern: the real fix needs one change
    out = decode_formats(ctc("RK857A1"), compile_formats(["sk"]))
    assert out[0].text == "RK857AI"


def _read(text: str, conf: float) -> PlateRead:
    return PlateRead(np.zeros((4, 2), np.float32), np.zeros(4, np.float32), 0.9, [Candidate(text, conf)])


def test_consensus_reports_once_then_improvements() -> None:
    cons = PlateConsensus(PlateConsensusConfig(similarity=0.8, min_reads=2, improve_margin=0.05), 0.5)
    assert cons.add(1, _read("ABC1234", 0.5), 0.0) is None  # min_reads
    first = cons.add(1, _read("ABC1234", 0.5), 0.1)
    assert first is not None and first.text == "ABC1234"
    assert cons.add(1, _read("A8C1234", 0.3), 0.2) is None  # misread joins the group, no change
    assert cons.add(1, None, 0.3) is None
    better = None
    for t in range(4):
        better = better or cons.add(1, _read("ABC1234", 0.95), 0.4 + t)
    assert better is not None and better.confidence >= first.confidence + 0.05
    assert cons.finish(1) is None
    assert cons.current(1) is None


def test_consensus_vote_and_separate_tracks() -> None:
    cons = PlateConsensus(PlateConsensusConfig(min_reads=1), 0.3)
    for text, c in [("ABC1234", 0.6), ("ABC1Z34", 0.5), ("A8C1234", 0.55), ("XYZ9876", 0.4)]:
        cons.add(5, _read(text, c), 0.0)
    cur = cons.current(5)
    assert cur is not None and cur.text == "ABC1234" and cur.reads == 3 and cur.total_reads == 4
    cons.add(6, _read("QQQ1111", 0.9), 0.0)
    assert cons.current(6).text == "QQQ1111" and cons.current(5).text == "ABC1234"


def test_jaro_winkler() -> None:
    assert jaro_winkler("ABC1234", "ABC1234") == 1.0
    assert jaro_winkler("ABC1234", "ABC1235") > 0.9
    assert jaro_winkler("ABC1234", "XYZ9876") < 0.5
    assert jaro_winkler("", "A") == 0.0


def test_lists_fuzzy_match() -> None:
    lists = PlateLists(PlateListsConfig(allow=["abc-1234", "K9"], watch=["XYZ 9876"], max_distance=1))
    assert lists.match("ABC1234").list == "allow"
    m = lists.match("ABC1284")
    assert m and m.entry == "ABC1234" and m.distance == 1
    assert lists.match("XYZ9B76").list == "watch"
    assert lists.match("XYZ98760").list == "watch"  # one extra character
    assert lists.match("ABD1284") is None  # two edits
    assert lists.match("AB0") is None and lists.match("") is None
    assert lists.match("K8") is None  # short plates get no slack
    assert lists.match("ABCI234").distance == 0  # I/1 folded
    exact = PlateLists(PlateListsConfig(watch=["ABC1234"], max_distance=0))
    assert exact.match("ABC1234") and exact.match("ABC1235") is None


def test_hash() -> None:
    h = plate_hash("abc-1234", "s3cret")
    assert h == plate_hash("ABC1234", "s3cret") and len(h) == 64
    assert h != plate_hash("ABC1234", "other") and h != plate_hash("ABC1235", "s3cret")
    with pytest.raises(ValueError):
        plate_hash("ABC1234", "")
    assert publish_fields("ABC1234", "text", None) == {"plate": "ABC1234"}
    assert publish_fields("ABC1234", "hash", "s3cret") == {"plate_hash": h}
    assert set(publish_fields("ABC1234", "both", "s3cret")) == {"plate", "plate_hash"}


def test_config() -> None:
    cfg = PlatesConfig(regions=["br", "eu", r"[A-Z]{3}[0-9]{3}"], publish="hash", hash_salt="x")
    assert cfg.enabled and cfg.hash_salt.get_secret_value() == "x"
    with pytest.raises(ValidationError):
        PlatesConfig(publish="hash")  # salt required
    with pytest.raises(ValidationError):
        PlatesConfig(regions=["[unclosed"])
    with pytest.raises(ValidationError):
        PlatesConfig(min_chars=9, max_chars=5)
    with pytest.raises(ValidationError):
        PlatesConfig(typo=True)
