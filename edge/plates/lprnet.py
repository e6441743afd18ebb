"""Open Model Zoo LPRNet (license-plate-recognition-barrier-0001), the reader for Chinese plates.

Input ``data [1,3,24,94]`` BGR 0..255 and ``seq_ind [88,1]`` (all ones on current OpenVINO);
output ``dec [1,88,1,1]``: already-decoded class indices ending at -1, over the manifest's
symbols (digits, ``<Province>`` tokens, letters). It gives no probabilities.
"""

from __future__ import annotations

import re

import cv2
import numpy as np

from edge.inference.backends import Backend

_TOKEN = re.compile(r"<[^>]*>")


def lprnet_core(text: str) -> str:
    """The plate characters of an LPRNet read: its ``<Province>``/``<police>`` tokens removed
    (their names are symbols, not characters: ``<Hebei>AB123`` has 5 characters, not 10)."""
    return _TOKEN.sub("", text)


class LprnetRecognizer:
    """One rectified plate crop -> its text; province tokens stay as ``<Name>``."""

    def __init__(self, backend: Backend, symbols: list[str]) -> None:
        self.backend = backend
        self.symbols = symbols
        names = [t.name for t in backend.inputs]
        self._data = "data" if "data" in names else names[-1]
        self._seq = next((n for n in names if n != self._data), None)

    def read(self, crop_bgr: np.ndarray) -> str:
        """The plate text of a BGR crop ('' when nothing is read)."""
        if crop_bgr.size == 0 or min(crop_bgr.shape[:2]) < 2:
            return ""
        x = cv2.resize(crop_bgr, (94, 24), interpolation=cv2.INTER_AREA).astype(np.float32).transpose(2, 0, 1)
        feeds = {self._data: x[None]}
        if self._seq is not None:
            feeds[self._seq] = np.ones((88, 1), np.float32)
        idx = next(iter(self.backend.infer(feeds).values())).reshape(-1).astype(np.int64)
        end = np.flatnonzero(idx < 0)
        idx = idx[: end[0]] if len(end) else idx
        return "".join(self.symbols[i] for i in idx if 0 <= i < len(self.symbols))
