"""Shared helper: class ids -> label strings."""

from __future__ import annotations

import numpy as np


def names(class_id: np.ndarray, labels: list[str], offset: int = 0) -> list[str]:
    """Label for each class id (``labels[id + offset]``), ``class<N>`` where the list is short."""
    out = []
    for c in class_id:
        i = int(c) + offset
        out.append(labels[i] if 0 <= i < len(labels) else f"class{int(c)}")
    return out
