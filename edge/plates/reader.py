"""``PlateReader``: find plates in a frame or vehicle crop and read them.

Default reader (``ocr_model: cct-xs-v1-global-plate-ocr``, a plate-specific slot model): LPD-YuNet
quads (low score floor, best few) -> one batched slot-model call over a padded crop of every
quad plus a wider crop of the detector's best one -> free and (optional) format-masked slot
decoding -> plates ranked by plate-ness (read confidence x character count, aspect, detector
score, position in the vehicle box) -> a doubtful best plate read again from test-time
variants of its crop (slot probabilities averaged) and a taller crop, and with a line added
above/below when its read is short (two-line plates). See docs/plates.md.

PP-OCRv4 reader (``ocr_model: ppocr-v4``): each quad -> a couple of rectified crops with
different margins (two-line plates are split into lines) -> one batched PP-OCRv4 recognition
call -> free and format-constrained CTC decoding -> the most confident plausible reading per
plate. Large frames with no confident read are retried tile by tile (both readers).

The recogniser is one :class:`~edge.plates.reading.PlateRecognizer` chosen by the recognition
model's head (:mod:`edge.plates.loader`): :class:`~edge.plates.read_slots.SlotReader`,
:class:`~edge.plates.read_lines.CtcReader` or :class:`~edge.plates.read_lines.LprnetReader`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge.inference.pool import ModelPool
from edge.plates.config import PlatesConfig
from edge.plates.loader import DECODERS, PlateModels, load_plate_models
from edge.plates.reading import PlateRead

__all__ = ["DECODERS", "PlateRead", "PlateReader", "load_plate_reader"]


class PlateReader:
    """Licence-plate detector + reader built from the models named in ``cfg``: ``detector``
    finds plates, ``recognizer`` (one of three, by the recognition model) reads them."""

    def __init__(
        self,
        cfg: PlatesConfig | None = None,
        threads: int = 2,
        device: str = "CPU",
        *,
        precision: str = "auto",
        cache_dir: Path | None = None,
        mirror: str | None = None,
        decoder: str = "constrained",
        progress: Any = None,
        pool: ModelPool | None = None,
        models: PlateModels | None = None,
    ):
        """Loads ``cfg``'s models (:func:`~edge.plates.loader.load_plate_models`, in ``pool``) unless
        ``models`` are given. ``decoder``: ``constrained`` (format-constrained slot decoding with
        region alphabets, and every known format as a mild prior when no region is set) or
        ``legacy`` (the previous decoder and formats, for side-by-side benchmarks)."""
        self.cfg = cfg or PlatesConfig()
        self.decoder = decoder
        if models is None:
            models = load_plate_models(self.cfg, threads=threads, device=device, precision=precision,
                                       cache_dir=cache_dir, mirror=mirror, progress=progress, decoder=decoder,
                                       pool=pool)
        self.detector = models.detector
        self.recognizer = models.recognizer
        self.backend = models.backend

    # -- public -------------------------------------------------------------------------------

    def read(self, image_bgr: np.ndarray, box: np.ndarray | list[float] | None = None) -> list[PlateRead]:
        """Plates in a BGR image (or in the normalised ``xyxy`` vehicle ``box`` of it), most
        confident first. Bad input (empty, tiny, blank) gives an empty list, not an error."""
        img = np.asarray(image_bgr)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        if img.ndim != 3 or img.shape[0] < 8 or img.shape[1] < 8 or img.shape[2] < 3:
            return []
        img = np.ascontiguousarray(img[:, :, :3], dtype=np.uint8)
        h, w = img.shape[:2]
        x0 = y0 = 0
        if box is not None:
            bx = np.asarray(box, dtype=np.float64).reshape(4)
            if not np.all(np.isfinite(bx)):
                return []
            bx = np.clip(bx, 0.0, 1.0)
            x0, y0 = int(bx[0] * w), int(bx[1] * h)
            x1, y1 = int(np.ceil(bx[2] * w)), int(np.ceil(bx[3] * h))
            if x1 - x0 < 8 or y1 - y0 < 8:
                return []
            img = img[y0:y1, x0:x1]
        reads = self.recognizer.read_region(img, box is not None)
        for r in reads:  # back to full-image coordinates
            r.corners = r.corners + np.array([x0, y0], dtype=np.float32)
            r.box = (r.box * np.array([img.shape[1], img.shape[0]] * 2) + [x0, y0, x0, y0]) / [w, h, w, h]
            r.box = np.clip(r.box, 0.0, 1.0).astype(np.float32)
        return reads


def load_plate_reader(cfg: PlatesConfig, options: Mapping[str, Any], pool: ModelPool | None = None) -> PlateReader:
    """The reader of plates config ``cfg`` with ``options`` (``AppConfig.model_options()``, as
    ``load_model`` takes them; a start-up ``progress`` callback is not passed on) in ``pool``."""
    return PlateReader(cfg, **{k: v for k, v in options.items() if k != "progress"}, pool=pool)
