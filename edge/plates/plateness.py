"""How much a read region looks like *the* plate, not any text (a sticker, a dealer frame, a
shop sign): soft factors in [0, 1] multiplied with the read's confidence.

Every factor is deliberately mild and region-independent: a plate-specific recogniser is
already unsure on non-plate text (its joint slot confidence drops), so these factors only need
to break ties between two confident reads, never to veto a plate on their own.
"""

from __future__ import annotations

import math

import numpy as np

# w/h of a plate quad: single-line plates are ~2-6 (US 2, EU 4.7), two-line and motorcycle
# plates ~1-2. Text lines much longer than a plate (signs, dealer strips) fall off outside.
ASPECT_RANGE = (0.9, 6.5)
ASPECT_SOFTNESS = 2.0  # an aspect this far outside the range costs a factor e
CHAR_RANGE = (5, 8)  # most plates worldwide; 4 and 9 happen (vanity, old series) at a cost
CHAR_OUTSIDE = 0.6
DET_FLOOR = 0.6  # factor of a detector score of 0 (the detector was trained on Chinese plates,
DET_FULL = 0.3  # so other plates often score low); full credit from this score up
TOP_OF_VEHICLE = 0.35  # a region centred in the top of the vehicle box: a window sticker, a roof sign
TOP_FACTOR = 0.6
SIDE_MARGIN = 0.12  # a region centred this close to the side of the vehicle box
SIDE_FACTOR = 0.85
NO_DIGIT_FACTOR = 0.5  # a reading without a digit: a dealer frame, a slogan, a make badge (vanity plates exist)
# Text stacked on a taller text line (its box at most this share of the other's height, most of
# its width over or under it, no more than the other's height away, not inside it): a dealer frame or a state
# slogan printed above or below the registration, which is the largest text on a plate.
STACKED_HEIGHT, STACKED_FACTOR = 0.67, 0.4


def aspect_factor(aspect: float) -> float:
    """1 for a plate-like w/h, decaying outside ``ASPECT_RANGE`` (by e per ``ASPECT_SOFTNESS``
    beyond its top, by e per 50% taller than its bottom)."""
    lo, hi = ASPECT_RANGE
    if not aspect > 0 or not math.isfinite(aspect):
        return 0.0
    if aspect > hi:
        return math.exp(-(aspect - hi) / ASPECT_SOFTNESS)
    if aspect < lo:
        return math.exp(-(lo / aspect - 1) / 0.5)
    return 1.0


def chars_factor(n: int) -> float:
    """1 for a common plate length, ``CHAR_OUTSIDE`` per character outside ``CHAR_RANGE``."""
    lo, hi = CHAR_RANGE
    return float(CHAR_OUTSIDE ** max(lo - n, n - hi, 0))


def detector_factor(score: float) -> float:
    """``DET_FLOOR`` .. 1 rising with the detector score up to ``DET_FULL``."""
    return DET_FLOOR + (1 - DET_FLOOR) * min(1.0, max(0.0, score) / DET_FULL)


def position_factor(box_xyxy: np.ndarray, region_wh: tuple[int, int]) -> float:
    """Where the region sits inside the vehicle crop (only meaningful when the reader was given
    a vehicle box): plates are on the lower part of a vehicle, near its middle."""
    w, h = region_wh
    if w <= 0 or h <= 0:
        return 1.0
    cx = (box_xyxy[0] + box_xyxy[2]) / 2 / w
    cy = (box_xyxy[1] + box_xyxy[3]) / 2 / h
    f = TOP_FACTOR if cy < TOP_OF_VEHICLE else 1.0
    if cx < SIDE_MARGIN or cx > 1 - SIDE_MARGIN:
        f *= SIDE_FACTOR
    return f


def mix_factor(text: str) -> float:
    """``NO_DIGIT_FACTOR`` for a reading without any digit, else 1: almost every registration
    has one, while frames, slogans and badges rarely do."""
    return 1.0 if any(ch.isdigit() for ch in text) else NO_DIGIT_FACTOR


def stacked_factor(box: np.ndarray, others: list[np.ndarray]) -> float:
    """``STACKED_FACTOR`` when ``box`` (``xyxy``) is a smaller text line right above or below a
    taller one of ``others`` (a dealer frame or slogan on the plate's border), else 1."""
    h = box[3] - box[1]
    w = box[2] - box[0]
    if h <= 0 or w <= 0:
        return 1.0
    for o in others:
        oh = o[3] - o[1]
        if h > STACKED_HEIGHT * oh:
            continue
        overlap = min(box[2], o[2]) - max(box[0], o[0])
        gap = max(o[1] - box[3], box[1] - o[3])  # vertical distance (< 0: they overlap)
        # above or below it, not inside it (a plate inside a loose, larger box is still the plate)
        if overlap >= 0.5 * w and -0.3 * h <= gap <= oh:
            return STACKED_FACTOR
    return 1.0


def plate_score(
    confidence: float,
    n_chars: int,
    detector_score: float,
    aspect: float,
    position: float = 1.0,
) -> float:
    """The read's confidence weighed by how plate-like the region is."""
    return confidence * chars_factor(n_chars) * detector_factor(detector_score) * aspect_factor(aspect) * position
