"""Multi-output attribute classifier (e.g. vehicle type + colour): best value and score per output."""

from __future__ import annotations

from typing import Any

import numpy as np


def decode(outputs: dict[str, np.ndarray], head: dict[str, Any], labels: list[str]) -> dict[str, tuple[str, float]]:
    """``head["outputs"]`` maps output name -> value names, in model order."""
    result = {}
    for name, values in head["outputs"].items():
        probs = outputs[name].reshape(-1)
        i = int(probs.argmax())
        result[name] = (values[i], float(probs[i]))
    return result
