"""Stateful LSTM-SSD (AutoML Video on-device): ``TFLite_Detection_PostProcess`` outputs plus
the LSTM state ``c, h``.

The state is fed back by the model runner (``LoadedModel``, from the manifest's
``head.state: {input: output}``), not here: a head is a pure function of one frame's outputs.
This head drops any state outputs it is still given and decodes the four postprocess outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.errors import ModelError
from edge.inference.heads import ssd_postprocess
from edge.inference.preprocess import Letterbox
from edge.types import Detections


def decode(
    outputs: dict[str, np.ndarray],
    lb: Letterbox,
    head: dict[str, Any],
    labels: list[str],
    label_offset: int,
    score_threshold: float,
) -> Detections:
    """Boxes, classes, scores and count of the postprocess op -> Detections (state ignored)."""
    state_outputs = set((head.get("state") or {}).values())
    det = {k: v for k, v in outputs.items() if k not in state_outputs}
    if len(det) != 4:
        raise ModelError(f"lstm_ssd expects 4 postprocess outputs besides the state, got {sorted(det)}")
    return ssd_postprocess.decode(det, lb, head, labels, label_offset, score_threshold)
