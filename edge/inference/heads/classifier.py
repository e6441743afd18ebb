"""Single-output classifier: top-k (label, score) pairs."""

from __future__ import annotations

from typing import Any

import numpy as np


def decode(outputs: dict[str, np.ndarray], head: dict[str, Any], labels: list[str]) -> list[tuple[str, float]]:
    """Softmax is applied only when the outputs are not already probabilities."""
    scores = next(iter(outputs.values())).reshape(-1).astype(np.float32)
    if scores.min() < 0 or scores.sum() > 1.5:
        e = np.exp(scores - scores.max())
        scores = e / e.sum()
    k = int(head.get("top_k", 5))
    top = np.argsort(-scores)[:k]
    return [(labels[i] if i < len(labels) else f"class{i}", float(scores[i])) for i in top]
