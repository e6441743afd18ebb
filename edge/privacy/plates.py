"""Plate boxes to mask: LPD-YuNet (the plate reader's detector) on the picture that leaves,
with a threshold below the reader's confident reads and a margin around each plate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.errors import ModelError

if TYPE_CHECKING:
    from edge.inference.pool import ModelPool

PLATE_SCORE = 0.25  # YuNet: real plates ~0.5-0.9 here, false boxes on car bodies ~0.1
MARGIN = 0.15  # of the plate's width / height, each side


class PlateFinder:
    """``boxes(image)``: pixel xyxy boxes (N,4) of the plates in a BGR image, with a margin."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector

    @classmethod
    def load(
        cls,
        name: str = "lpd-yunet-plate",
        *,
        threads: int = 2,
        device: str = "CPU",
        precision: str = "auto",
        cache_dir: Path | None = None,
        mirror: str | None = None,
        pool: ModelPool | None = None,
        **_: Any,
    ) -> PlateFinder:
        """Pull and open the YuNet plate detector ``name`` in ``pool`` (default: the process's)."""
        from edge.inference.backends import pick_backend
        from edge.inference.pool import default_pool
        from edge.plates.detect import YuNetPlateDetector

        pool = pool or default_pool()
        manifest, folder = pool.ensure_model(name, cache_dir=cache_dir, mirror=mirror)
        if manifest.input is None or manifest.head.type != "yunet_plate":
            raise ModelError(f"{name} is not a YuNet plate detector")
        kind = pick_backend(list(manifest.backends))
        backend = pool.backend(kind, folder / manifest.entry, threads, device, precision)
        return cls(YuNetPlateDetector(backend, manifest.input.size, manifest.head, manifest.input.name))

    def boxes(self, image: np.ndarray) -> np.ndarray:
        """Pixel boxes of the plates in ``image``, grown by :data:`MARGIN`."""
        quads = self.detector.detect(image, score_threshold=PLATE_SCORE, tiles=True, max_plates=10)
        return grow(np.array([q.box for q in quads], np.float32).reshape(-1, 4), MARGIN)


def grow(boxes: np.ndarray, margin: float) -> np.ndarray:
    """Pixel xyxy ``boxes`` grown by ``margin`` of their size on each side."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    dw, dh = (b[:, 2] - b[:, 0]) * margin, (b[:, 3] - b[:, 1]) * margin
    b[:, 0] -= dw
    b[:, 2] += dw
    b[:, 1] -= dh
    b[:, 3] += dh
    return b
