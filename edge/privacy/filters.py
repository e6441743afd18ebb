"""Frame filters: the plugin point of ``edge replay --filter NAME`` (and of ``--annotate``).

A filter is a function ``(frame, detections) -> frame``: a BGR image and the detections known
for it (normalised boxes; may be None) in, the image to write out. :data:`FILTERS` maps a name
to a factory that builds the filter for one camera's config (filters such as ``privacy`` need
models and a policy). Add a filter with::

    @register("grey")
    def _grey(cam_cfg, model_options):
        return lambda frame, dets: cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edge.errors import EdgeError
from edge.types import Detections

FrameFilter = Callable[[np.ndarray, Detections | None], np.ndarray]
FilterFactory = Callable[[Any, dict[str, Any]], FrameFilter]

FILTERS: dict[str, FilterFactory] = {}


def register(name: str) -> Callable[[FilterFactory], FilterFactory]:
    """Decorator: make ``factory(cam_cfg, model_options) -> FrameFilter`` available as ``name``."""

    def add(factory: FilterFactory) -> FilterFactory:
        FILTERS[name] = factory
        return factory

    return add


def build_filter(name: str, cam_cfg: Any, model_options: dict[str, Any] | None = None) -> FrameFilter:
    """The filter called ``name`` for camera config ``cam_cfg``; EdgeError naming the known ones."""
    if name not in FILTERS:
        raise EdgeError(f"unknown filter {name!r}; known filters: {', '.join(sorted(FILTERS))}")
    return FILTERS[name](cam_cfg, dict(model_options or {}))


@register("none")
def _none(cam_cfg: Any, model_options: dict[str, Any]) -> FrameFilter:
    return lambda frame, dets: frame


@register("privacy")
def _privacy(cam_cfg: Any, model_options: dict[str, Any]) -> FrameFilter:
    """The camera's privacy policy on the whole frame; a frame that cannot be masked is
    blurred whole (a video keeps every frame, so failing closed cannot mean dropping it)."""
    from edge.privacy.ops import blurred
    from edge.privacy.policy import PrivacyFilter, PrivacyPolicy

    pf = PrivacyFilter(PrivacyPolicy.for_camera(cam_cfg), "replay", model_options=model_options)

    def run(frame: np.ndarray, dets: Detections | None) -> np.ndarray:
        out = pf.protect(frame, detections=dets)
        return blurred(frame) if out is None else out

    run.privacy = pf  # type: ignore[attr-defined]  # its status, for the summary line
    return run
