"""Stateful LSTM-SSD (AutoML Video on-device): ``TFLite_Detection_PostProcess`` outputs plus
the LSTM state ``c, h``.

The state is fed back by the model runner (``LoadedModel``, from the manifest's
``head.state: {input: output}``), not here: a head is a pure function of one frame's outputs.
This head drops any state outputs it is still given and decodes the four postprocess outputs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge.errors import ModelError
from edge.inference.heads import ssd_postprocess
from edge.inference.heads.base import HeadContext
from edge.types import Detections


def decode(outputs: Mapping[str, np.ndarray], ctx: HeadContext) -> Detections:
    """Boxes, classes, scores and count of the postprocess op -> Detections (state ignored)."""
    state_outputs = set(ctx.params.state.values())
    det = {k: v for k, v in outputs.items() if k not in state_outputs}
    if len(det) != 4:
        raise ModelError(f"lstm_ssd expects 4 postprocess outputs besides the state, got {sorted(det)}")
    return ssd_postprocess.decode(det, ctx)
