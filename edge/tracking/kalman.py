"""Constant-velocity Kalman filter on a box ``(cx, cy, w, h)``, in normalised units.

Written here (about 40 lines of numpy) rather than taken from filterpy/norfair because those
pin numpy<2, which conflicts with ai-edge-litert and OpenCV 4.10+. ``dt`` is real seconds, so
motion gating and irregular sampling do not confuse the motion model.
"""

from __future__ import annotations

import numpy as np


class BoxKalman:
    """State ``[cx, cy, w, h, vcx, vcy, vw, vh]``; velocities in units per second."""

    def __init__(self, xyxy: np.ndarray) -> None:
        self.x = np.zeros(8, np.float64)
        self.x[:4] = _to_cxcywh(xyxy)
        size = max(self.x[2], self.x[3], 1e-3)
        self.P = np.diag([size, size, size, size, 10 * size, 10 * size, size, size]) ** 2 * 0.05
        self._H = np.hstack([np.eye(4), np.zeros((4, 4))])

    def predict(self, dt: float) -> np.ndarray:
        """Advance by ``dt`` seconds and return the predicted xyxy box."""
        F = np.eye(8)
        F[:4, 4:] = np.eye(4) * dt
        size = max(self.x[2], self.x[3], 1e-3)
        q = (size * 0.5) ** 2 * max(dt, 1e-3)
        Q = np.diag([q * 0.1, q * 0.1, q * 0.1, q * 0.1, q, q, q * 0.1, q * 0.1])
        self.x = F @ self.x
        self.x[2:4] = np.maximum(self.x[2:4], 1e-4)
        self.P = F @ self.P @ F.T + Q
        return self.xyxy

    def update(self, xyxy: np.ndarray) -> None:
        """Correct with a measured box."""
        z = _to_cxcywh(xyxy)
        size = max(z[2], z[3], 1e-3)
        R = np.eye(4) * (size * 0.05) ** 2
        H = self._H
        y = z - H @ self.x
        S = H @ self.P @ H.T + R
        K = self.P @ H.T @ np.linalg.inv(S)
        self.x = self.x + K @ y
        self.P = (np.eye(8) - K @ H) @ self.P

    @property
    def xyxy(self) -> np.ndarray:
        """Current box estimate as xyxy."""
        cx, cy, w, h = self.x[:4]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


def _to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, 1e-4), max(y1 - y0, 1e-4)])
