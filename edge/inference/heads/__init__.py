"""Output heads: raw backend outputs -> ``Detections`` (or class scores). One module per head.

A detection head is a function ``decode(outputs, ctx: HeadContext) -> Detections``
(:class:`~edge.inference.heads.base.DetectionHead`); its parameters come from the manifest's
typed ``head:`` section (``ctx.params``, a :class:`~edge.registry.manifest.HeadSpec`).
``DETECTION_HEADS`` below is the one place a detection head is registered: add the module and
one line there. The classifier heads (:mod:`.classifier`, :mod:`.attributes`) have their own
typed ``decode`` and are called by their task's model class.
"""

from __future__ import annotations

from edge.errors import ModelError
from edge.inference.heads import detection_output, lstm_ssd, ssd_postprocess, yolov8, yolox
from edge.inference.heads.base import DetectionHead, HeadContext

# manifest ``head.type`` -> decoder (mypy checks each against the DetectionHead protocol)
DETECTION_HEADS: dict[str, DetectionHead] = {
    "ssd_postprocess": ssd_postprocess.decode,
    "lstm_ssd": lstm_ssd.decode,
    "detection_output": detection_output.decode,
    "yolox": yolox.decode,
    "yolov8": yolov8.decode,
}


def get_detection_head(kind: str | None) -> DetectionHead:
    """The decoder of detection head ``kind`` (a manifest's ``head.type``); ModelError naming the supported ones."""
    head = DETECTION_HEADS.get(kind or "")
    if head is None:
        raise ModelError(
            f"output head {kind!r} is not supported for this task; supported: {', '.join(DETECTION_HEADS)}"
        )
    return head


__all__ = ["DETECTION_HEADS", "DetectionHead", "HeadContext", "get_detection_head"]
