"""Perspective rectification: turn a plate quad into an upright, front-on crop."""

from __future__ import annotations

import cv2
import numpy as np


def quad_size(corners: np.ndarray) -> tuple[float, float]:
    """Mean (width, height) of a tl, tr, br, bl quad."""
    c = np.asarray(corners, dtype=np.float32)
    w = (np.linalg.norm(c[1] - c[0]) + np.linalg.norm(c[2] - c[3])) / 2
    h = (np.linalg.norm(c[3] - c[0]) + np.linalg.norm(c[2] - c[1])) / 2
    return float(w), float(h)


def expand_quad(corners: np.ndarray, mx: float, my: float) -> np.ndarray:
    """Grow a quad along its own axes by ``mx`` of its width on each side and ``my`` of its height."""
    c = np.asarray(corners, dtype=np.float32)
    tl, tr, br, bl = c
    ux = ((tr - tl) + (br - bl)) / 2  # plate's horizontal axis (full width)
    uy = ((bl - tl) + (br - tr)) / 2  # vertical axis (full height)
    dx, dy = ux * mx, uy * my
    return np.stack([tl - dx - dy, tr + dx - dy, br + dx + dy, bl - dx + dy]).astype(np.float32)


def grow_quad(corners: np.ndarray, left: float, top: float, right: float, bottom: float) -> np.ndarray:
    """Grow a quad along its own axes by these fractions of its width (left, right) and height
    (top, bottom); ``grow_quad(c, m, n, m, n) == expand_quad(c, m, n)``."""
    c = np.asarray(corners, dtype=np.float32)
    tl, tr, br, bl = c
    ux = ((tr - tl) + (br - bl)) / 2
    uy = ((bl - tl) + (br - tr)) / 2
    return np.stack(
        [
            tl - ux * left - uy * top,
            tr + ux * right - uy * top,
            br + ux * right + uy * bottom,
            bl - ux * left + uy * bottom,
        ]
    ).astype(np.float32)


def warp_quad(image: np.ndarray, corners: np.ndarray, out_height: int | None = None) -> np.ndarray:
    """Warp the quad to a rectangle of its own mean size (or ``out_height`` high, same aspect).

    Pixels outside the image are replicated from the border so a plate at the edge of the
    frame does not get a black band the recogniser could read as a character.
    """
    w, h = quad_size(corners)
    w, h = max(w, 2.0), max(h, 2.0)
    if out_height is not None:
        w, h = w * out_height / h, float(out_height)
    W, H = max(2, int(round(w))), max(2, int(round(h)))
    dst = np.array([[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(np.asarray(corners, dtype=np.float32), dst)
    return cv2.warpPerspective(image, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
