"""Silver or white? The attributes model cannot tell an over-exposed silver car from a white one;
the way the light lies on the body can.

Solid white paint reflects diffusely: its bonnet and roof are evenly bright. Metallic (silver)
paint has a "flop": bright where it mirrors the sky, clearly darker a little further on. So
among the body's paint pixels (the box's core, brighter than halfway from the road to the
frame's brightest) a white car's lower quartile stays close to its 90th percentile, a silver
car's does not. Exposure, optics and compression change that ratio from camera to camera, so a
vehicle is judged against the other vehicles the same camera calls white: one clearly less even
than their median is silver, and the model's "white" moves to "gray" (silver in the model's
words) in proportion to how far below it lies. The first white vehicle a camera sees has
nothing to be compared with and keeps the model's colour.
"""

from __future__ import annotations

from collections import OrderedDict

import cv2
import numpy as np

WHITE = "white"
SILVER = "gray"  # the attributes model's word for silver / grey
CORE = 0.2  # the body is the box without this share of its width/height at each side
PAINT = 0.5  # paint pixels: lighter than this far from the road's lightness to the frame's brightest
MIN_PIXELS = 20  # fewer paint pixels than this: nothing to judge
FRAME_STEP = 4  # the frame's road / brightest levels from every 4th pixel (same percentiles, cheap)
SPREAD = 0.1  # this far below the camera's white median the model's "white" is all moved to gray
KEEP = 50  # white vehicles remembered per camera (the latest)


def paint_evenness(image: np.ndarray, box: np.ndarray) -> float | None:
    """How evenly lit the body's paint is in ``box`` (normalised xyxy) of BGR ``image``: the
    paint pixels' lower quartile over their 90th percentile, both measured from the road's
    lightness (None: too few paint pixels)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (np.clip(np.asarray(box, np.float64), 0, 1) * [w, h, w, h]).tolist()
    dx, dy = (x1 - x0) * CORE, (y1 - y0) * CORE
    core = image[int(y0 + dy) : int(np.ceil(y1 - dy)), int(x0 + dx) : int(np.ceil(x1 - dx))]
    if core.size == 0:
        return None
    frame = cv2.cvtColor(np.ascontiguousarray(image[::FRAME_STEP, ::FRAME_STEP]), cv2.COLOR_BGR2LAB)[..., 0]
    road, top = (float(v) for v in np.percentile(frame, [50, 99]))
    light = cv2.cvtColor(np.ascontiguousarray(core), cv2.COLOR_BGR2LAB)[..., 0].reshape(-1).astype(np.float64)
    paint = light[light > road + PAINT * (top - road)]
    if len(paint) < MIN_PIXELS:
        return None
    p25, p90 = np.percentile(paint, [25, 90])
    return float((p25 - road) / max(p90 - road, 1e-6))


class WhiteReference:
    """The evenness of the vehicles one camera calls white, and the gray share it implies."""

    def __init__(self) -> None:
        self._whites: OrderedDict[int, float] = OrderedDict()  # track id -> its mean evenness

    def update(self, track: int, evenness: float | None, white: bool) -> None:
        """Record (or drop) a confirmed track's mean evenness as it is now called white or not."""
        self._whites.pop(track, None)
        if white and evenness is not None:
            self._whites[track] = evenness
            while len(self._whites) > KEEP:
                self._whites.popitem(last=False)

    def silver_share(self, track: int, evenness: float | None) -> float:
        """The share of a white vote that goes to gray: 0 at or above the median evenness of this
        camera's white vehicles (the track's own included, at least one other needed), rising to
        1 at SPREAD below it."""
        if evenness is None or not any(t != track for t in self._whites):
            return 0.0
        ref = float(np.median([*(e for t, e in self._whites.items() if t != track), evenness]))
        return float(np.clip((ref - evenness) / SPREAD, 0.0, 1.0))


def adjusted_colours(votes: dict[str, float], silver_share: float) -> dict[str, float]:
    """``votes`` with ``silver_share`` of the white weight moved to gray."""
    if silver_share <= 0 or votes.get(WHITE, 0.0) <= 0:
        return dict(votes)
    out = dict(votes)
    moved = out[WHITE] * silver_share
    out[WHITE] -= moved
    out[SILVER] = out.get(SILVER, 0.0) + moved
    return out
