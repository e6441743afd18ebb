"""Turn CTC frame probabilities into ranked plate candidates, free or format-constrained.

Free decoding is best-path CTC plus a small beam over each character's alternatives.
Constrained decoding runs a CTC Viterbi alignment against every region template of a
plausible length (vectorised over templates), so a format can both fix look-alikes (O->0 where
a digit is required) and recover a character whose frame was swallowed by a blank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edge.plates.formats import CONFUSION_WEIGHT, DIGIT_TO_LETTER, LETTER_TO_DIGIT, PlateFormat, allowed_masks
from edge.plates.ocr import ALPHABET, CtcOutput

_IDX = {ch: i for i, ch in enumerate(ALPHABET)}
# credit[i, j]: when the format rules out j at a position but j looks like i, this share of
# j's probability counts for i. O/0 and I/1 share glyphs in many plate fonts (and the
# recogniser's language context picks between them), so they count in full; the other pairs
# are real but rarer confusions and count half, so a template needing many of them loses.
_CREDIT = np.zeros((len(ALPHABET), len(ALPHABET)), dtype=np.float32)
for _l, _d in LETTER_TO_DIGIT.items():
    _CREDIT[_IDX[_d], _IDX[_l]] = CONFUSION_WEIGHT.get(_l + _d, 0.5)
for _d, _ls in DIGIT_TO_LETTER.items():
    for _l in _ls:
        _CREDIT[_IDX[_l], _IDX[_d]] = CONFUSION_WEIGHT.get(_l + _d, 0.5)


@dataclass
class Candidate:
    """One reading of a plate: text, joint confidence, per-character confidences and the
    region format it was decoded with (None = free decoding). ``prior``: the share of
    ``confidence`` that is the formats' prior, not the model's (format weight, free-reading
    penalty; 1 = none): candidates are ranked with it, the slot reader publishes without it."""

    text: str
    confidence: float
    char_confidences: list[float] = field(default_factory=list)
    format: str | None = None
    prior: float = 1.0


def _beam(dists: list[np.ndarray], allowed: np.ndarray | None, top_n: int) -> list[tuple[str, list[float]]]:
    """Top-N strings over independent per-position distributions (36,), ranked by product."""
    beams: list[tuple[float, str, list[float]]] = [(0.0, "", [])]
    for i, d in enumerate(dists):
        p = d if allowed is None else np.where(allowed[i], d, 0.0)
        order = np.argsort(-p)[: max(2, top_n)]
        nxt = []
        for lp, s, cs in beams:
            for j in order:
                pj = float(min(1.0, p[j]))
                if pj <= 0:
                    continue
                nxt.append((lp + math.log(max(pj, 1e-9)), s + ALPHABET[j], [*cs, pj]))
        beams = sorted(nxt, key=lambda b: -b[0])[:top_n]
    return [(s, cs) for _, s, cs in beams]


def decode_free(ctc: CtcOutput, top_n: int = 3) -> list[Candidate]:
    """Best path and its per-position alternatives, best first."""
    text, conf, dists = ctc.greedy()
    if not text:
        return []
    out = [Candidate(text, float(np.prod(conf)), conf)]
    for s, cs in _beam(dists, None, top_n):
        if s != text:
            out.append(Candidate(s, float(np.prod(cs)), cs))
    return out[:top_n]


def _viterbi(lp_blank: np.ndarray, lp_char: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CTC Viterbi alignment of M fixed-length templates at once.

    lp_blank (T,), lp_char (T, 36) log probabilities; masks (M, L, 36) allowed characters.
    A position keeps one character over all its frames, and two equal characters in a row
    need a blank between them, as in CTC. Returns per template the best path log-probability
    (M,), the position emitted at each frame (M, T; -1 = blank) and the character chosen for
    each position (M, L).
    """
    m, n, a = masks.shape
    t_len = lp_blank.shape[0]
    neg = -np.inf
    alpha = np.arange(a)[None, None, :]
    emit = np.where(masks[None], lp_char[:, None, None, :], neg)  # (T, M, L, 36)
    blank = np.full((m, n + 1), neg)  # blank[k]: k characters emitted, now on a blank
    char = np.full((m, n, a), neg)  # char[k, c]: on character c at position k
    blank[:, 0] = lp_blank[0]
    char[:, 0] = emit[0, :, 0]
    # back pointers. char_from: -2 stay, -1 from blank, c' >= 0 from character c' at k-1.
    # blank_from: -1 stay, c >= 0 from character c at position k-1.
    char_from = np.zeros((t_len, m, n, a), dtype=np.int8)
    blank_from = np.zeros((t_len, m, n + 1), dtype=np.int8)
    for t in range(1, t_len):
        # best and runner-up character per position (entering c from the previous position
        # must come from a different character, as CTC needs a blank between equal ones)
        i1 = char.argmax(axis=2)[:, :, None]
        v1 = np.take_along_axis(char, i1, axis=2)
        masked = char.copy()
        np.put_along_axis(masked, i1, neg, axis=2)
        i2 = masked.argmax(axis=2)[:, :, None]
        v2 = np.take_along_axis(masked, i2, axis=2)
        is_best = alpha == i1
        prev_val = np.where(is_best, v2, v1)
        prev_idx = np.where(is_best, i2, i1)
        from_prev = np.full((m, n, a), neg)
        from_prev[:, 1:] = prev_val[:, :-1]
        prev_c = np.zeros((m, n, a), dtype=np.int64)
        prev_c[:, 1:] = prev_idx[:, :-1]
        from_blank = np.broadcast_to(blank[:, :n, None], (m, n, a))
        use_blank = from_blank > char
        best_in = np.where(use_blank, from_blank, char)
        use_prev = from_prev > best_in
        new_char = np.where(use_prev, from_prev, best_in) + emit[t]
        char_from[t] = np.where(use_prev, prev_c, np.where(use_blank, -1, -2))
        last = np.full((m, n + 1), neg)
        last[:, 1:] = v1[:, :, 0]
        last_c = np.zeros((m, n + 1), dtype=np.int64)
        last_c[:, 1:] = i1[:, :, 0]
        stay_blank = blank >= last
        blank_from[t] = np.where(stay_blank, -1, last_c)
        blank = np.where(stay_blank, blank, last) + lp_blank[t]
        char = new_char
    end_char = char[:, n - 1].max(axis=1)
    end_c = char[:, n - 1].argmax(axis=1)
    score = np.maximum(blank[:, n], end_char)
    pos = np.full((m, t_len), -1, dtype=np.int64)
    chosen = np.zeros((m, n), dtype=np.int64)
    for mi in range(m):
        if not np.isfinite(score[mi]):
            continue
        on_blank = bool(blank[mi, n] >= end_char[mi])
        k, c = (n, -1) if on_blank else (n - 1, int(end_c[mi]))
        for t in range(t_len - 1, -1, -1):
            if on_blank:
                f = int(blank_from[t, mi, k]) if t else -1
                if t and f >= 0:  # came from character f of position k-1
                    on_blank, k, c = False, k - 1, f
            else:
                pos[mi, t] = k
                chosen[mi, k] = c
                f = int(char_from[t, mi, k, c]) if t else -2
                if t and f == -1:
                    on_blank = True
                elif t and f >= 0:
                    k, c = k - 1, f
    return score, pos, chosen


MAX_HARD_MISMATCHES = 1  # templates needing more non-look-alike changes to the free read are skipped


def _hard_mismatches(text: str, template: tuple[str, ...]) -> int:
    """Positions where ``text``'s character is neither allowed nor a look-alike of an allowed one."""
    bad = 0
    for ch, allowed in zip(text, template):
        if ch in allowed:
            continue
        alike = LETTER_TO_DIGIT.get(ch, "") + DIGIT_TO_LETTER.get(ch, "")
        if not any(c in allowed for c in alike):
            bad += 1
    return bad


def _deletion_factor(probs: np.ndarray, blank_frames: np.ndarray) -> float:
    """How much likelier the free best path is on frames a template path spends on blank:
    a template that drops a confidently read character pays that character's probability."""
    if blank_frames.size == 0:
        return 1.0
    p = probs[blank_frames]
    ratio = p[:, 0] / np.maximum(p.max(axis=1), 1e-12)
    return float(np.prod(np.minimum(ratio, 1.0)))


def decode_formats(
    ctc: CtcOutput, formats: list[PlateFormat], top_n: int = 3, length_slack: int = 0
) -> list[Candidate]:
    """Candidates that fit one of ``formats``' templates, best first.

    Each template gets its best alignment; its confidence is the product of the per-position
    (look-alike credited) character probabilities times a penalty for confidently read
    characters the alignment had to drop. Per-position alternatives are expanded for the best
    few templates only. Templates whose length is far from the free read's are skipped: a
    format should fix characters, not invent a plate."""
    probs = ctc.probs.astype(np.float64)
    t_len = probs.shape[0]
    free_text, _, _ = ctc.greedy()
    if not free_text:
        return []
    by_len: dict[int, dict[tuple[str, ...], PlateFormat]] = {}
    for f in formats:
        for tpl in f.templates:
            if (
                abs(len(tpl) - len(free_text)) <= length_slack
                and len(tpl) <= t_len
                and (len(tpl) != len(free_text) or _hard_mismatches(free_text, tpl) <= MAX_HARD_MISMATCHES)
            ):
                by_len.setdefault(len(tpl), {}).setdefault(tpl, f)
    p_chars = probs[:, 1:]
    credited = np.minimum(p_chars + p_chars @ _CREDIT.T, 1.0)  # (T, 36) incl. look-alikes
    lp_blank = np.log(np.maximum(probs[:, 0], 1e-12))
    scored: list[tuple[float, str, str, list[np.ndarray], np.ndarray]] = []
    for n, items in by_len.items():
        tpls = list(items)
        masks = np.stack([allowed_masks(tpl) for tpl in tpls])  # (M, L, 36)
        # align with look-alike credit too: with raw probabilities a position that needs
        # O->0 would look impossible and the path would shift characters instead
        score, pos, chosen = _viterbi(lp_blank, np.log(np.maximum(credited, 1e-12)), masks)
        for mi, tpl in enumerate(tpls):
            if not np.isfinite(score[mi]):
                continue
            dists, text, conf = [], "", 1.0
            for k in range(n):
                frames = np.flatnonzero(pos[mi] == k)
                if frames.size == 0:
                    break
                c = int(chosen[mi, k])
                f_best = frames[int(credited[frames, c].argmax())]  # where the character peaks
                d = np.where(masks[mi, k], credited[f_best], 0.0)
                j = int(d.argmax())  # with look-alike credit this may differ from the aligned c
                text += ALPHABET[j]
                conf *= float(d[j])
                dists.append(d)
            if len(dists) != n:
                continue
            conf *= _deletion_factor(probs, np.flatnonzero(pos[mi] < 0)) * items[tpl].weight
            scored.append((conf, text, items[tpl].name, dists, masks[mi]))
    scored.sort(key=lambda x: -x[0])
    best: dict[str, Candidate] = {}
    for conf, _text, name, dists, mask in scored[:top_n]:
        factor = conf / max(float(np.prod([d.max() for d in dists])), 1e-12)
        for s, cs in _beam(dists, mask, top_n):
            cand = Candidate(s, float(np.prod(cs)) * factor, cs, name)
            if s not in best or cand.confidence > best[s].confidence:
                best[s] = cand
    return sorted(best.values(), key=lambda x: -x.confidence)[:top_n]
