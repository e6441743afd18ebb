"""The detection head interface: ``decode(outputs, ctx) -> Detections``.

``HeadContext`` carries everything a head reads besides the raw outputs: the letterbox (input
pixels -> frame), the labels and their offset, the score threshold and the manifest's typed head
section (:class:`~edge.registry.manifest.HeadSpec`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from edge.inference.preprocess import Letterbox
from edge.registry.manifest import HeadSpec  # the module, not the package: that one imports the puller
from edge.types import Detections


@dataclass(frozen=True)
class HeadContext:
    """What a detection head needs besides one frame's outputs."""

    letterbox: Letterbox
    labels: Sequence[str]
    label_offset: int = 0
    score_threshold: float = 0.3
    params: HeadSpec = field(default_factory=HeadSpec)

    def names(self, class_id: np.ndarray) -> list[str]:
        """Label of each class id (``labels[id + label_offset]``), ``class<N>`` where the list is short."""
        out = []
        for c in class_id:
            i = int(c) + self.label_offset
            out.append(self.labels[i] if 0 <= i < len(self.labels) else f"class{int(c)}")
        return out

    def detections(self, xyxy_in: np.ndarray, score: np.ndarray, class_id: np.ndarray) -> Detections:
        """Detections from boxes in input pixels (mapped through the letterbox to the frame)."""
        return Detections(self.letterbox.to_frame_normalised(xyxy_in), score, class_id, self.names(class_id))


class DetectionHead(Protocol):
    """A detection head: one frame's raw outputs (by output name) -> Detections in frame coordinates."""

    def __call__(self, outputs: Mapping[str, np.ndarray], ctx: HeadContext, /) -> Detections: ...
