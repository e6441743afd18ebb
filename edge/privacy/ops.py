"""The masking operations: what a masked pixel becomes (``blur``, ``pixelate``, ``fill``)."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

FILL = (128, 128, 128)  # BGR: a flat mid grey, unmistakably masked in a picture


def _coarse(image: np.ndarray) -> int:
    """A block / kernel size that leaves no face or plate readable: 1/24 of the longer side, >= 8 px."""
    return max(8, max(image.shape[:2]) // 24)


def blurred(image: np.ndarray) -> np.ndarray:
    """A heavy blur of the whole image (shrink, blur, grow: cheap at any size)."""
    h, w = image.shape[:2]
    k = _coarse(image)
    small = cv2.resize(image, (max(1, w * 4 // k), max(1, h * 4 // k)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 2.0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def pixelated(image: np.ndarray) -> np.ndarray:
    """The image as coarse blocks of their mean colour."""
    h, w = image.shape[:2]
    k = _coarse(image)
    small = cv2.resize(image, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def filled(image: np.ndarray) -> np.ndarray:
    """The image in one flat colour."""
    return np.full_like(image, FILL)


OPERATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"blur": blurred, "pixelate": pixelated, "fill": filled}


def apply(image: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """``image`` with the pixels of bool ``mask`` replaced as ``mode`` says (``off``: unchanged).
    Returns a new image; the input is never changed."""
    if mode == "off" or not mask.any():
        return image
    if mode not in OPERATIONS:
        raise ValueError(f"unknown masking mode {mode!r}; choose one of off, {', '.join(OPERATIONS)}")
    out = image.copy()
    out[mask] = OPERATIONS[mode](image)[mask]
    return out
