"""Single-output classifier: top-k (label, score) pairs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from edge.registry.manifest import HeadSpec


def decode(outputs: Mapping[str, np.ndarray], params: HeadSpec, labels: Sequence[str]) -> list[tuple[str, float]]:
    """The ``params.top_k`` best labels; softmax is applied only when the outputs are not already probabilities."""
    scores = next(iter(outputs.values())).reshape(-1).astype(np.float32)
    if scores.min() < 0 or scores.sum() > 1.5:
        e = np.exp(scores - scores.max())
        scores = e / e.sum()
    top = np.argsort(-scores)[: params.top_k]
    return [(labels[i] if i < len(labels) else f"class{i}", float(scores[i])) for i in top]
