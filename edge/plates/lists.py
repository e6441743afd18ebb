"""Allow/watch lists with fuzzy matching, and salted plate hashing for privacy."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

from edge.plates.config import PlateListsConfig
from edge.plates.formats import normalize_plate

# O/0 and I/1 are one glyph on many plates: a list entry should not miss on them
_FOLD = str.maketrans("OI", "01")


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute), via rapidfuzz."""
    return int(Levenshtein.distance(a, b))


def plate_hash(text: str, salt: str | bytes) -> str:
    """HMAC-SHA256 of the normalised plate text keyed with ``salt``, as hex.

    The same plate always gives the same hash for one salt (so it can be counted and matched),
    but without the salt the text cannot be recovered by hashing every possible plate.
    """
    key = salt.encode("utf-8") if isinstance(salt, str) else salt
    if not key:
        raise ValueError("plate_hash needs a non-empty salt")
    return hmac.new(key, normalize_plate(text).encode("ascii"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ListMatch:
    """A plate found on a list: which list, the entry it matched and the edit distance."""

    list: str  # "watch" or "allow"
    entry: str
    distance: int


class PlateLists:
    """Fuzzy lookup of plates in the configured allow and watch lists."""

    def __init__(self, cfg: PlateListsConfig | None = None):
        self.cfg = cfg or PlateListsConfig()
        self._entries = [("watch", e) for e in self._clean(self.cfg.watch)]
        self._entries += [("allow", e) for e in self._clean(self.cfg.allow)]

    @staticmethod
    def _clean(items: list[str]) -> list[str]:
        return [n for n in (normalize_plate(x) for x in items) if n]

    def match(self, text: str) -> ListMatch | None:
        """Closest list entry within ``max_distance`` edits (watch wins ties), else None."""
        plate = normalize_plate(text).translate(_FOLD)
        if not plate:
            return None
        best: ListMatch | None = None
        for name, entry in self._entries:
            # short plates get less slack: one edit in a 4-character plate is a different plate
            limit = min(self.cfg.max_distance, max(0, (len(entry) - 3) // 2))
            d = edit_distance(plate, entry.translate(_FOLD))
            if d <= limit and (best is None or d < best.distance):
                best = ListMatch(name, entry, d)
        return best


def publish_fields(text: str, publish: str, salt: str | None) -> dict[str, str]:
    """The plate fields an event may carry: ``{"plate": ...}``, ``{"plate_hash": ...}`` or both,
    per the ``publish`` setting (text, hash, both) of PlatesConfig."""
    out: dict[str, str] = {}
    if publish in ("text", "both"):
        out["plate"] = text
    if publish in ("hash", "both"):
        if not salt:
            raise ValueError("publishing a plate hash needs a salt")
        out["plate_hash"] = plate_hash(text, salt)
    return out
