"""Frame -> input tensor, as the manifest's InputSpec says (size, layout, colour, dtype, scaling)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.inference.backends.base import TensorSpec
from edge.registry.manifest import InputSpec


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the input: ``input = frame * scale + pad``, in pixels."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    in_w: int
    in_h: int
    frame_w: int
    frame_h: int

    def to_frame_normalised(self, xyxy_input_px: np.ndarray) -> np.ndarray:
        """Boxes in input pixels -> boxes normalised to the original frame, clipped to [0, 1]."""
        out = xyxy_input_px.astype(np.float32).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale_x / self.frame_w
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale_y / self.frame_h
        return np.clip(out, 0.0, 1.0)


def prepare(image: np.ndarray, spec: InputSpec, tensor: TensorSpec) -> tuple[np.ndarray, Letterbox]:
    """Resize (stretch or letterbox), convert colour, lay out and scale one BGR image."""
    h, w = image.shape[:2]
    in_w, in_h = spec.size
    resized: np.ndarray
    if spec.resize == "letterbox":
        s = min(in_w / w, in_h / h)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        canvas = np.full((in_h, in_w, 3), spec.pad_value, dtype=np.uint8)
        # YOLOX pads bottom/right only, so boxes need no offset
        canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        resized, lb = canvas, Letterbox(s, s, 0.0, 0.0, in_w, in_h, w, h)
    else:
        resized = image if (w, h) == (in_w, in_h) else cv2.resize(image, (in_w, in_h), interpolation=cv2.INTER_LINEAR)
        lb = Letterbox(in_w / w, in_h / h, 0.0, 0.0, in_w, in_h, w, h)
    arr: np.ndarray
    if spec.color == "RGB":
        resized = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    if tensor.dtype == np.uint8 or spec.dtype == "uint8":
        arr = resized.astype(np.uint8)
    else:
        arr = resized.astype(np.float32)
        if spec.mean != (0.0, 0.0, 0.0) or spec.std != (1.0, 1.0, 1.0):
            arr = (arr - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
    if spec.layout == "NCHW":
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr[None]), lb
