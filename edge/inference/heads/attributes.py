"""Multi-output attribute classifier (e.g. vehicle type + colour): best value and score per output."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge.errors import ModelError
from edge.registry.manifest import HeadSpec


def value_names(params: HeadSpec, model: str) -> dict[str, list[str]]:
    """``head.outputs`` of model ``model``: output name -> value names, in model order; ModelError
    when its manifest has none."""
    if params.outputs is None:
        raise ModelError(f"model {model}: an attributes head needs head.outputs (output name -> value names)")
    return params.outputs


def decode(outputs: Mapping[str, np.ndarray], params: HeadSpec, model: str) -> dict[str, tuple[str, float]]:
    """The best value and its score for each output named in ``params.outputs`` (of model ``model``)."""
    result = {}
    for name, values in value_names(params, model).items():
        probs = outputs[name].reshape(-1)
        i = int(probs.argmax())
        result[name] = (values[i], float(probs[i]))
    return result
