"""Plate text normalisation, region formats and format-aware character fixes.

A region format is a regular expression over normalised plate text (A-Z, 0-9, no spaces or
dashes). Formats built only from character classes, literals and ``{m,n}`` counts are also
expanded into *templates* -- one allowed-character set per position -- which the decoder uses
to resolve look-alike characters (O/0, I/1, B/8 ...) only where a position demands a letter or
a digit. Any other regex still works as a filter.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from edge.plates.ocr import ALPHABET

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"

# US letters: no I, O or Q (see "us" below).
_US = "[A-HJ-NPR-Z]"
# Vietnamese series letters: no I, J, O, Q or W (see "vn" below).
_VN = "[A-HK-NPR-VX-Z]"

# Built-in formats by region code: a regex over normalised text, or (regex, weight) for a format
# that should win only near ties (default weight 1). Sources: national plate schemes (current +
# common older series). Spaces, dashes and region seals are removed before matching, as in the
# text. A region's *alphabet* is every character some of its formats allow somewhere: the
# decoder treats a character outside it as a misread of its look-alike (see decode_slot_formats).
REGION_FORMATS: dict[str, list[str | tuple[str, float]]] = {
    # Brazil: old grey plates and Mercosul
    "br": [r"[A-Z]{3}[0-9]{4}", r"[A-Z]{3}[0-9][A-Z][0-9]{2}"],
    # Mercosul neighbours
    "ar": [r"[A-Z]{3}[0-9]{3}", r"[A-Z]{2}[0-9]{3}[A-Z]{2}"],
    # Europe
    "at": [r"[A-Z]{1,2}[0-9]{1,5}[A-Z]{1,3}", r"[A-Z]{1,2}[A-Z]{1,3}[0-9]{1,3}"],
    "be": [r"[0-9][A-Z]{3}[0-9]{3}", r"[A-Z]{3}[0-9]{3}"],
    "ch": [r"[A-Z]{2}[0-9]{1,6}"],
    "cz": [r"[0-9][A-Z][0-9A-Z][0-9]{4}"],
    "de": [r"[A-Z]{1,3}[A-Z]{1,2}[0-9]{1,4}", r"[A-Z]{1,3}[A-Z]{1,2}[0-9]{1,3}[EH]"],
    "dk": [r"[A-Z]{2}[0-9]{5}"],
    "es": [r"[0-9]{4}[A-Z]{3}", r"[A-Z]{1,2}[0-9]{4}[A-Z]{1,2}"],
    "fi": [r"[A-Z]{2,3}[0-9]{1,3}"],
    "fr": [r"[A-Z]{2}[0-9]{3}[A-Z]{2}", r"[0-9]{1,4}[A-Z]{1,3}[0-9]{2}"],
    "gb": [r"[A-Z]{2}[0-9]{2}[A-Z]{3}", r"[A-Z][0-9]{1,3}[A-Z]{3}", r"[A-Z]{3}[0-9]{1,3}[A-Z]"],
    "hr": [r"[A-Z]{2}[0-9]{3,4}[A-Z]{1,2}"],
    "hu": [r"[A-Z]{3}[0-9]{3}", r"[A-Z]{4}[0-9]{3}"],
    "it": [r"[A-Z]{2}[0-9]{3}[A-Z]{2}"],
    "nl": [
        r"[A-Z]{2}[0-9]{2}[0-9]{2}",
        r"[0-9]{2}[0-9]{2}[A-Z]{2}",
        r"[0-9]{2}[A-Z]{2}[0-9]{2}",
        r"[A-Z]{2}[0-9]{2}[A-Z]{2}",
        r"[A-Z]{2}[A-Z]{2}[0-9]{2}",
        r"[0-9]{2}[A-Z]{2}[A-Z]{2}",
        r"[0-9]{2}[A-Z]{3}[0-9]",
        r"[0-9][A-Z]{3}[0-9]{2}",
        r"[A-Z]{2}[0-9]{3}[A-Z]",
        r"[A-Z][0-9]{3}[A-Z]{2}",
        r"[A-Z]{3}[0-9]{2}[A-Z]",
        r"[0-9][A-Z]{2}[0-9]{3}",
    ],
    "no": [r"[A-Z]{2}[0-9]{4,5}"],
    "pl": [
        r"[A-Z]{2}[0-9]{5}",
        r"[A-Z]{2}[0-9]{4}[A-Z]",
        r"[A-Z]{2}[0-9]{3}[A-Z]{2}",
        r"[A-Z]{2}[0-9][A-Z][0-9]{3}",
        r"[A-Z]{2}[0-9][A-Z]{2}[0-9]{2}",
        r"[A-Z]{3}[A-Z][0-9]{3}",
        r"[A-Z]{3}[0-9]{2}[A-Z]{2}",
        r"[A-Z]{3}[0-9][A-Z]{2}[0-9]",
        r"[A-Z]{3}[0-9]{4}",
        r"[A-Z]{3}[0-9]{3}[A-Z]",
        r"[A-Z]{3}[0-9][A-Z][0-9]{2}",
    ],
    "pt": [r"[0-9]{2}[A-Z]{2}[0-9]{2}", r"[A-Z]{2}[0-9]{2}[A-Z]{2}", r"[0-9]{2}[0-9]{2}[A-Z]{2}"],
    "ro": [r"[A-Z]{1,2}[0-9]{2,3}[A-Z]{3}"],
    "se": [r"[A-Z]{3}[0-9]{2}[0-9A-Z]"],
    "si": [r"[A-Z]{2}[0-9A-Z]{2,6}"],
    "sk": [r"[A-Z]{2}[0-9]{3}[A-Z]{2}", r"[A-Z]{2}[0-9][A-Z]{4}"],
    # Americas. US standard passenger plates: most states never issue I, O or Q (they look like
    # 1, 0 and 0), so the region's alphabet leaves them out and the decoder gives a read I, O or
    # Q to its look-alike digit in full. The common state serial schemes come first; the last
    # entry accepts any other 5-7 character serial of that alphabet (its slots allow letters and
    # digits, so it weighs less: slots.MIXED_SLOT), so a scheme's letter and digit slots win a
    # near tie without forcing a plate into a scheme.
    "us": [
        rf"[0-9]{_US}{{3}}[0-9]{{3}}",  # 1ABC234 (CA)
        rf"{_US}{{3}}[0-9]{{4}}",  # ABC1234 (TX, NY, PA, GA, NC, OH, MI, VA ...)
        rf"{_US}{{3}}[0-9]{{3}}",  # ABC123
        rf"[0-9]{{3}}{_US}{{3}}",  # 123ABC
        rf"{_US}{{2}}[0-9]{{5}}",  # AB12345
        rf"[0-9]{_US}{{2}}[0-9]{{4}}",  # 1AB2345
        rf"[0-9]{{3}}{_US}{{4}}",  # 123ABCD
        rf"{_US}{{4}}[0-9]{{2}}",  # ABCD12
        rf"{_US}[0-9]{{2}}{_US}{{3,4}}",  # A12BCD(E)
        rf"[0-9]{{2,3}}{_US}[0-9]{{3,4}}",  # 12A3456
        rf"[0-9{_US[1:-1]}]{{5,7}}",  # any other serial of the US alphabet (loose: see MIXED_SLOT)
    ],
    "mx": [r"[A-Z]{3}[0-9]{3}[A-Z]", r"[A-Z]{3}[0-9]{4}", r"[A-Z]{3}[0-9]{2}[A-Z]{2}"],
    # Asia. Vietnam (Circular 58/2020/TT-BCA): a 2-digit province code, the series (one letter,
    # two letters, or a letter and a digit on motorbikes) and a 4-5 digit serial; cars carry it
    # on one long line (51F-888.26) or two lines (51F / 888.26), motorbikes on two (59-L2 /
    # 519.07). The series letters leave out I, J, O, Q and W.
    "vn": [
        rf"[0-9]{{2}}{_VN}[0-9]{{4,5}}",  # 51F88826, 52P5688
        rf"[0-9]{{2}}{_VN}[0-9][0-9]{{4,5}}",  # 59L251907 (motorbike)
        rf"[0-9]{{2}}{_VN}{{2}}[0-9]{{4,5}}",  # 65CA02259, 51LD12345
    ],
    # Africa
    "za": [
        r"[A-Z]{2}[0-9]{2}[A-Z]{2}(GP|MP|NW|EC|FS|NC|ZN)",
        r"C[A-Z]{1,2}[0-9]{3,6}",
        r"[A-Z]{3}[0-9]{3}(GP|MP|NW|EC|FS|NC|ZN|L)",
        r"[A-Z]{3}[0-9]{3}",
    ],
}
# Region groups, so a deployment can say "eu".
REGION_GROUPS = {
    "eu": [
        "at",
        "be",
        "ch",
        "cz",
        "de",
        "dk",
        "es",
        "fi",
        "fr",
        "gb",
        "hr",
        "hu",
        "it",
        "nl",
        "no",
        "pl",
        "pt",
        "ro",
        "se",
        "sk",
    ],
}

# Look-alike pairs: a letter the recogniser may output where a digit belongs, and back.
LETTER_TO_DIGIT = {
    "O": "0",
    "Q": "0",
    "D": "0",
    "U": "0",
    "I": "1",
    "L": "1",
    "J": "1",
    "Z": "2",
    "S": "5",
    "G": "6",
    "B": "8",
    "T": "7",
    "A": "4",
}
# Credit a format gives a ruled-out look-alike (letter+digit key); pairs not listed get 0.5.
CONFUSION_WEIGHT = {"O0": 1.0, "I1": 0.7, "Q0": 0.2, "U0": 0.2, "D0": 0.3, "J1": 0.2, "L1": 0.2, "T7": 0.3, "A4": 0.3}
DIGIT_TO_LETTER = {"0": "OQD", "1": "IJL", "2": "Z", "4": "A", "5": "S", "6": "G", "7": "T", "8": "B"}

# Unicode characters that look like plate characters but NFKC does not fold (Cyrillic, Greek).
_LOOKALIKES = str.maketrans(
    {
        "А": "A",
        "В": "B",
        "Е": "E",
        "К": "K",
        "М": "M",
        "Н": "H",
        "О": "O",
        "Р": "P",
        "С": "C",
        "Т": "T",
        "У": "Y",
        "Х": "X",
        "І": "I",
        "Ј": "J",
        "Ѕ": "S",
        "Α": "A",
        "Β": "B",
        "Ε": "E",
        "Ζ": "Z",
        "Η": "H",
        "Ι": "I",
        "Κ": "K",
        "Μ": "M",
        "Ν": "N",
        "Ο": "O",
        "Ρ": "P",
        "Τ": "T",
        "Υ": "Y",
        "Χ": "X",
    }
)


def normalize_plate(text: str) -> str:
    """Upper-case ASCII alphanumerics only: folds full-width and Cyrillic/Greek look-alikes,
    drops spaces, dashes, dots and anything else."""
    s = unicodedata.normalize("NFKC", text).upper().translate(_LOOKALIKES)
    s = unicodedata.normalize("NFKC", s).upper()
    return "".join(ch for ch in s if ch in ALPHABET)


@dataclass(frozen=True)
class PlateFormat:
    """A compiled format: the regex and, if expandable, its fixed-length templates."""

    name: str
    pattern: re.Pattern[str]
    templates: tuple[tuple[str, ...], ...]  # each: allowed characters per position
    weight: float = 1.0  # prior: formats of regions listed first win ties
    alphabet: str = ALPHABET  # characters the format's region uses anywhere (see region_alphabet)

    @property
    def masks(self) -> list[np.ndarray]:
        """Allowed-character masks of the templates (cached)."""
        return [allowed_masks(t) for t in self.templates]

    def match(self, text: str) -> bool:
        """True if the whole normalised text fits the format."""
        return self.pattern.fullmatch(text) is not None


_CLASS = {
    r"\d": DIGITS,
    r"[0-9]": DIGITS,
    r"[A-Z]": LETTERS,
    r"[A-Z0-9]": ALPHABET,
    r"[0-9A-Z]": ALPHABET,
    r"\w": ALPHABET,
    ".": ALPHABET,
}
_TOKEN = re.compile(r"(\\d|\\w|\[[^\]]+\]|\([A-Z|]+\)|[A-Z0-9.])(\{(\d+)(?:,(\d+))?\}|\?)?")
_MAX_TEMPLATES = 256
REGION_ORDER_DECAY = 0.9


def _char_class(tok: str) -> list[str] | None:
    if tok in _CLASS:
        return [_CLASS[tok]]
    if tok.startswith("(") and tok.endswith(")"):  # alternation of literal strings
        return None
    if tok.startswith("["):
        body, out = tok[1:-1], ""
        i = 0
        while i < len(body):
            if i + 2 < len(body) and body[i + 1] == "-":
                out += "".join(chr(c) for c in range(ord(body[i]), ord(body[i + 2]) + 1))
                i += 3
            else:
                out += body[i]
                i += 1
        out = "".join(ch for ch in ALPHABET if ch in out)
        return [out] if out else None
    return [tok]


def _expand(regex: str) -> tuple[tuple[str, ...], ...]:
    """Expand a simple regex into fixed-length templates; () if it uses unsupported syntax."""
    pos, parts = 0, []
    for m in _TOKEN.finditer(regex):
        if m.start() != pos:
            return ()
        pos = m.end()
        tok, quant, lo, hi = m.group(1), m.group(2), m.group(3), m.group(4)
        if tok.startswith("("):
            options = [tuple(alt) for alt in tok[1:-1].split("|")]
        else:
            cls = _char_class(tok)
            if cls is None:
                return ()
            options = [(cls[0],)]
        if quant == "?":
            counts = [0, 1]
        elif quant:
            counts = list(range(int(lo), int(hi or lo) + 1))
        else:
            counts = [1]
        parts.append([opt * n for opt in options for n in counts] if len(options) == 1 else [opt for opt in options])
    if pos != len(regex):
        return ()
    combos = []
    for combo in itertools.product(*parts):
        combos.append(tuple(s for piece in combo for s in piece))
        if len(combos) > _MAX_TEMPLATES:
            return ()
    return tuple(dict.fromkeys(combos))


def _entry(item: str | tuple[str, float]) -> tuple[str, float]:
    return (item, 1.0) if isinstance(item, str) else (item[0], float(item[1]))


def region_alphabet(templates: list[tuple[tuple[str, ...], ...]]) -> str:
    """Every character some template allows somewhere, in ``ALPHABET`` order (all of it when a
    format could not be expanded: a regex-only format rules nothing out)."""
    if not templates or any(not t for t in templates):
        return ALPHABET
    used = {ch for tpls in templates for tpl in tpls for allowed in tpl for ch in allowed}
    return "".join(ch for ch in ALPHABET if ch in used)


def compile_formats(regions: list[str], ordered: bool = True, legacy: bool = False) -> list[PlateFormat]:
    """Formats for a list of region codes (``br``, ``eu`` ...) or custom regexes.

    ``ordered``: formats of an earlier-listed region get a higher weight (the site's own region
    first); off for ``known_formats``, where no region is preferred. ``legacy``: the previous
    decoder's formats (``LEGACY_FORMATS``), for side-by-side benchmarks."""
    out: list[PlateFormat] = []
    for rank, item in enumerate(regions):
        # a reading that fits an earlier-listed region wins a near tie (O/0 and I/1 often make
        # one glyph sequence fit two countries' formats): list the home region first
        weight = REGION_ORDER_DECAY**rank if ordered else 1.0
        key = item.strip().lower()
        codes = REGION_GROUPS.get(key, [key] if key in REGION_FORMATS else None)
        if codes is None:  # a custom regex: its own region
            tpls = _expand(item)
            out.append(PlateFormat(item, re.compile(item), tpls, weight, region_alphabet([tpls])))
            continue
        for code in codes:
            table = LEGACY_FORMATS if legacy and code in LEGACY_FORMATS else REGION_FORMATS
            entries = [_entry(e) for e in table[code]]
            expanded = [_expand(rx) for rx, _ in entries]
            alphabet = region_alphabet(expanded)
            for (rx, w), tpls in zip(entries, expanded):
                out.append(PlateFormat(code, re.compile(rx), tpls, weight * w, alphabet))
    return out


def known_formats() -> list[PlateFormat]:
    """Every built-in region's formats with equal weight: the prior of a reader with no region
    configured (a reading some country's format accepts is preferred to one none accepts,
    without any country being preferred to another; see ``reader.NO_REGION_FREE_PENALTY``)."""
    return compile_formats(list(REGION_FORMATS), ordered=False)


# Formats the previous decoder used where they differ from today's (``legacy=True``, kept so the
# bench can run the old reader beside the new one): the old ``us`` list ended in a catch-all
# that accepted any 5-8 characters, so it constrained nothing.
LEGACY_FORMATS: dict[str, list[str | tuple[str, float]]] = {
    "us": [
        r"[0-9][A-Z]{3}[0-9]{3}",
        r"[A-Z]{3}[0-9]{4}",
        r"[A-Z]{3}[0-9]{3}",
        r"[0-9]{3}[A-Z]{3}",
        r"[A-Z]{2}[0-9]{5}",
        r"[A-Z0-9]{5,8}",
    ],
}


@functools.lru_cache(maxsize=4096)
def allowed_masks(template: tuple[str, ...]) -> np.ndarray:
    """(L, 36) boolean mask of the characters allowed at each template position."""
    mask = np.zeros((len(template), len(ALPHABET)), dtype=bool)
    for i, allowed in enumerate(template):
        for ch in allowed:
            mask[i, ALPHABET.index(ch)] = True
    mask.flags.writeable = False  # shared through the cache
    return mask
