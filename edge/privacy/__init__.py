"""The privacy layer: no person, face or plate leaves the device unless the site allows it.

- :mod:`~edge.privacy.people`: person boxes from a person-capable detector;
- :mod:`~edge.privacy.segment`: person masks from MediaPipe selfie segmentation on square crops;
- :mod:`~edge.privacy.ops`: what a masked pixel becomes (blur, pixelate, fill);
- :mod:`~edge.privacy.policy`: a camera's policy and the filter that applies it, failing closed;
- :mod:`~edge.privacy.filters`: the frame-filter plugin point (``edge replay --filter``);
- :mod:`~edge.privacy.video`: a whole video through a filter, reassembled as H.264;
- :mod:`~edge.privacy.status`: counts for ``/metrics`` and the ``/healthz`` problem;
- :mod:`~edge.privacy.quality`: masks measured against a background-subtraction reference;
- :mod:`~edge.privacy.check`: ``edge config check`` of the privacy model names.

See docs/privacy.md.
"""

from __future__ import annotations

from typing import Any

from edge.privacy.status import PrivacyCollector, PrivacyStatus

__all__ = ["PrivacyCollector", "PrivacyStatus", "snapshot_privacy"]


def snapshot_privacy(camera: str, cam_cfg: Any, app_cfg: Any, status: PrivacyStatus, pool: Any = None) -> Any:
    """The PrivacyFilter for camera ``camera``'s snapshots (None when its policy masks nothing),
    its models loaded in ``pool`` (an ``edge.inference.pool.ModelPool``; default the process's).
    Its models load now on a background thread (a failure shows on ``/healthz`` at once); a
    snapshot taken before they are loaded waits for them. numpy/OpenCV are imported only here."""
    import threading

    from edge.privacy.policy import PrivacyFilter, PrivacyPolicy

    policy = PrivacyPolicy.for_camera(cam_cfg)
    if not policy.active:
        return None
    pf = PrivacyFilter(policy, camera, status, {**app_cfg.model_options(), "pool": pool})
    threading.Thread(target=pf.preload, name=f"edge-privacy-{camera}", daemon=True).start()
    return pf
