"""PP-OCRv4 text recognition (CRNN + CTC) restricted to plate characters.

The model predicts over ~6600 symbols (Chinese, Latin, punctuation). Plates only use A-Z and
0-9, so every frame's distribution is folded onto 36 plate symbols plus "blank": lowercase and
full-width forms are added to their upper-case ASCII symbol, everything else (dashes, dots,
Chinese characters, spaces) counts as blank, which is what a separator is to CTC.
"""

from __future__ import annotations

import logging
import math
import unicodedata
from dataclasses import dataclass

import cv2
import numpy as np

from edge.inference.backends import Backend

log = logging.getLogger("edge.plates.ocr")

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SYMBOLS = len(ALPHABET)
REC_HEIGHT = 48
WIDTH_BUCKET = 32
TAIL_FRAMES = 2  # frames past the crop that can still see its last character


def plate_symbol(ch: str) -> str | None:
    """The plate symbol a model character stands for (NFKC folds full-width forms), or None."""
    s = unicodedata.normalize("NFKC", ch).upper()
    return s if len(s) == 1 and s in ALPHABET else None


@dataclass
class CtcOutput:
    """Per-frame probabilities over ``blank + ALPHABET`` (T, 37) for one crop."""

    probs: np.ndarray

    def greedy(self) -> tuple[str, list[float], list[np.ndarray]]:
        """Best-path decode: text, per-character probability (max over its frames) and each
        character's distribution over ALPHABET at its most confident frame (alternatives)."""
        best = self.probs.argmax(axis=1)
        text: list[str] = []
        conf: list[float] = []
        dist: list[np.ndarray] = []
        prev = 0
        for t, k in enumerate(best):
            if k != 0 and k != prev:
                text.append(ALPHABET[k - 1])
                conf.append(float(self.probs[t, k]))
                dist.append(self.probs[t, 1:].copy())
            elif k != 0 and self.probs[t, k] > conf[-1]:
                conf[-1] = float(self.probs[t, k])
                dist[-1] = self.probs[t, 1:].copy()
            prev = k
        return "".join(text), conf, dist


class PaddleRecognizer:
    """PP-OCRv4 rec: input ``[N,3,48,W]`` RGB, (x/255-0.5)/0.5; CTC blank at 0; the character
    list is the ONNX metadata key ``character`` (index i+1), plus a trailing space symbol."""

    def __init__(self, backend: Backend, characters: list[str]):
        self.backend = backend
        self.input_name = backend.inputs[0].name
        n_out = backend.outputs[0].shape[-1] if backend.outputs[0].shape else -1
        vocab = ["<blank>", *characters, " "]
        if n_out > 0 and n_out != len(vocab):
            log.warning("rec model has %d classes but %d characters (+blank, space)", n_out, len(vocab))
        # group model classes by the plate symbol they mean
        groups: list[list[int]] = [[] for _ in range(SYMBOLS)]
        for i, ch in enumerate(vocab[1:], start=1):
            sym = plate_symbol(ch)
            if sym is not None:
                groups[ALPHABET.index(sym)].append(i)
        self._groups = [np.asarray(g, dtype=np.int64) for g in groups]

    @staticmethod
    def prepare(crop_bgr: np.ndarray, max_width: int = 320) -> np.ndarray:
        """Resize a BGR crop to height 48 keeping its aspect (width >= 16), as a normalised CHW array."""
        h, w = crop_bgr.shape[:2]
        width = int(min(max_width, max(16, math.ceil(REC_HEIGHT * w / max(h, 1)))))
        img = cv2.resize(crop_bgr, (width, REC_HEIGHT), interpolation=cv2.INTER_LINEAR if w < width else cv2.INTER_AREA)
        x = img[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)
        return (x / 127.5) - 1.0

    def recognize(self, crops_bgr: list[np.ndarray]) -> list[CtcOutput]:
        """Recognise a batch of crops in one call (padded on the right with the model's zero)."""
        if not crops_bgr:
            return []
        arrays = [self.prepare(c) for c in crops_bgr]
        # pad to a few fixed widths: a new input shape costs the runtime a re-plan (ORT memory
        # patterns, OpenVINO shape inference) that is slower than the padded inference itself
        wmax = max(a.shape[2] for a in arrays)
        wmax = int(math.ceil(wmax / WIDTH_BUCKET) * WIDTH_BUCKET)
        batch = np.zeros((len(arrays), 3, REC_HEIGHT, wmax), dtype=np.float32)
        for i, a in enumerate(arrays):
            batch[i, :, :, : a.shape[2]] = a
        out = self.backend.infer({self.input_name: batch})
        probs = next(iter(out.values()))
        results = []
        for i, a in enumerate(arrays):
            # frames past the crop's own width only see padding
            t_used = min(probs.shape[1], math.ceil(probs.shape[1] * a.shape[2] / wmax) + TAIL_FRAMES)
            p = probs[i, :t_used]
            folded = np.empty((p.shape[0], SYMBOLS + 1), dtype=np.float32)
            for k, idx in enumerate(self._groups):
                folded[:, k + 1] = p[:, idx].sum(axis=1) if idx.size else 0.0
            folded[:, 0] = np.clip(1.0 - folded[:, 1:].sum(axis=1), 0.0, 1.0)
            results.append(CtcOutput(folded))
        return results
