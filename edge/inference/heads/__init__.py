"""Output heads: raw backend outputs -> ``Detections`` (or class scores). One module per head.

A head is a function ``decode(outputs, letterbox, manifest_head, labels, label_offset, score_threshold)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from edge.errors import ModelError

HEADS = {
    "ssd_postprocess": "edge.inference.heads.ssd_postprocess",
    "lstm_ssd": "edge.inference.heads.lstm_ssd",
    "detection_output": "edge.inference.heads.detection_output",
    "yolox": "edge.inference.heads.yolox",
    "yolov8": "edge.inference.heads.yolov8",
    "classifier": "edge.inference.heads.classifier",
    "attributes": "edge.inference.heads.attributes",
}


def get_head(kind: str) -> Callable[..., Any]:
    """The ``decode`` function of head ``kind``."""
    if kind not in HEADS:
        raise ModelError(f"output head {kind!r} is not supported for this task; supported: {', '.join(HEADS)}")
    return importlib.import_module(HEADS[kind]).decode  # type: ignore[no-any-return]
