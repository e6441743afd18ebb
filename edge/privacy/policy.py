"""A camera's privacy policy and the filter that applies it to a picture before it leaves.

``PrivacyFilter.protect(image, region)`` finds people (detector on the region that leaves, with
context around it), segments them on square crops, masks people / heads / plates as the policy
says, and returns the masked image. It fails closed: when a model cannot load or fails on the
picture, the picture is withheld (``None``) or, with ``on_failure: blur``, blurred whole; each
case is counted in :class:`~edge.privacy.status.PrivacyStatus` and shown on ``/healthz``.

Models load on first use (the cost is paid per picture that leaves, never per frame); a model
that failed to load is tried again after :data:`RETRY_LOAD` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edge.privacy import ops
from edge.privacy.people import PersonDetector, person_boxes
from edge.privacy.plates import PlateFinder, grow
from edge.privacy.segment import PersonSegmenter
from edge.privacy.status import PrivacyStatus
from edge.types import Detections

log = logging.getLogger("edge.privacy")

RETRY_LOAD = 60.0  # s between attempts to load a model that failed
HEAD = 0.22  # the top share of a person's box that holds the head
CONTEXT = 0.5  # the detector sees the region that leaves grown by this share of its size each side

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class PrivacyPolicy:
    """Resolved masking modes of one camera (``off`` = not masked)."""

    people: str = "blur"
    faces: str = "blur"
    plates: str = "off"
    on_failure: str = "drop"
    detector: str = "person-vehicle-bike-detection-crossroad-0078"
    segmenter: str = "mediapipe-selfie-segmentation"
    plate_detector: str = "lpd-yunet-plate"

    @classmethod
    def for_camera(cls, cam_cfg: Any) -> PrivacyPolicy:
        """The policy of a ``CameraConfig``: its ``privacy`` section, ``plates: auto`` resolved
        from ``plates.publish`` (masked with blur when plate text is hashed)."""
        p = cam_cfg.privacy
        plates_cfg = getattr(cam_cfg, "plates", None)
        plates = p.plates
        if plates == "auto":
            hashed = plates_cfg is not None and plates_cfg.enabled and plates_cfg.publish != "text"
            plates = "blur" if hashed else "off"
        detector = plates_cfg.detector_model if plates_cfg is not None else cls.plate_detector
        return cls(p.people, p.faces, plates, p.on_failure, p.detector, p.segmenter, detector)

    @property
    def needs_people(self) -> bool:
        """True when people or faces are masked (the person models are needed)."""
        return self.people != "off" or self.faces != "off"

    @property
    def active(self) -> bool:
        """True when anything is masked."""
        return self.needs_people or self.plates != "off"


class PrivacyError(Exception):
    """A picture could not be masked; ``reason`` is ``model`` (cannot load) or ``frame``."""

    def __init__(self, reason: str, why: str) -> None:
        super().__init__(why)
        self.reason = reason


class _Lazy:
    """A model loaded on first use, retried every RETRY_LOAD s after a failure."""

    def __init__(self, what: str, load: Callable[[], Any]) -> None:
        self.what, self._load = what, load
        self._model: Any = None
        self._error: str | None = None
        self._failed_at = -1e9
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._model is None:
                if self._error is not None and time.monotonic() - self._failed_at < RETRY_LOAD:
                    raise PrivacyError("model", self._error)
                try:
                    self._model = self._load()
                    self._error = None
                except Exception as err:  # noqa: BLE001 - any load failure withholds pictures
                    self._failed_at = time.monotonic()
                    self._error = f"{self.what} cannot load: {str(err).splitlines()[0][:300] if str(err) else err!r}"
                    log.error("privacy: %s; pictures that leave are withheld", self._error)
                    raise PrivacyError("model", self._error) from None
            return self._model


class PrivacyFilter:
    """Applies one camera's :class:`PrivacyPolicy` to pictures (see the module doc)."""

    def __init__(
        self,
        policy: PrivacyPolicy,
        camera: str = "",
        status: PrivacyStatus | None = None,
        model_options: dict[str, Any] | None = None,
    ) -> None:
        self.policy, self.camera = policy, camera
        self.status = status or PrivacyStatus()
        opts = {k: v for k, v in (model_options or {}).items() if k != "progress"}
        self._detector = _Lazy(
            f"person detector {policy.detector}", lambda: PersonDetector.load(policy.detector, **opts)
        )
        self._segmenter = _Lazy(
            f"segmentation model {policy.segmenter}", lambda: PersonSegmenter.load(policy.segmenter, **opts)
        )
        self._plates = _Lazy(
            f"plate detector {policy.plate_detector}", lambda: PlateFinder.load(policy.plate_detector, **opts)
        )

    def load(self) -> None:
        """Load the models the policy needs now (raises PrivacyError)."""
        if self.policy.needs_people:
            self._detector.get()
            self._segmenter.get()
        if self.policy.plates != "off":
            self._plates.get()

    def preload(self) -> None:
        """:meth:`load`, recording a failure in the status (``/healthz`` says why from the start)."""
        try:
            self.load()
        except PrivacyError as err:
            self.status.problem(self.camera, str(err))

    def mask(
        self,
        image: np.ndarray,
        region: Box | None = None,
        detections: Detections | None = None,
        plate_boxes: Sequence[Sequence[float]] = (),
    ) -> np.ndarray:
        """``image`` masked as the policy says, in the pixel ``region`` that leaves (default:
        all of it). ``detections`` (normalised) may add person boxes; ``plate_boxes`` (pixel)
        are masked as plates. Raises PrivacyError when a model cannot load or fails."""
        p = self.policy
        if not p.active:
            return image
        h, w = image.shape[:2]
        region = region or (0, 0, w, h)
        out = image
        try:
            if p.needs_people:
                boxes = np.concatenate([self._people(image, region), person_boxes(detections, w, h)])
                mask = self._segmenter.get().mask(image, boxes) if len(boxes) else np.zeros((h, w), bool)
                out = ops.apply(out, mask, p.people)
                if p.faces != "off" and p.people != p.faces:
                    out = ops.apply(out, heads(mask, boxes), p.faces)
            if p.plates != "off":
                x0, y0, x1, y1 = region
                found = self._plates.get().boxes(image[y0:y1, x0:x1]) + np.array([x0, y0, x0, y0], np.float32)
                plates = np.concatenate([found, grow(np.asarray(plate_boxes, np.float32).reshape(-1, 4), 0.15)])
                out = ops.apply(out, box_mask(plates, w, h), p.plates)
        except PrivacyError:
            raise
        except Exception as err:  # noqa: BLE001 - a model failing on this picture: fail closed
            raise PrivacyError("frame", f"masking failed: {type(err).__name__}: {str(err)[:200]}") from None
        return out

    def protect(
        self,
        image: np.ndarray,
        region: Box | None = None,
        detections: Detections | None = None,
        plate_boxes: Sequence[Sequence[float]] = (),
    ) -> np.ndarray | None:
        """:meth:`mask`, failing closed: None (withheld) or, with ``on_failure: blur``, the image
        blurred whole; counted either way."""
        try:
            out = self.mask(image, region, detections, plate_boxes)
        except PrivacyError as err:
            self.status.withhold(self.camera, err.reason, str(err))
            return ops.blurred(image) if self.policy.on_failure == "blur" else None
        self.status.ok(self.camera)
        return out

    def _people(self, image: np.ndarray, region: Box) -> np.ndarray:
        """Person boxes (frame pixels) found in ``region`` grown by CONTEXT (people near its
        edge are seen whole; small people are seen larger than in the whole frame)."""
        h, w = image.shape[:2]
        x0, y0, x1, y1 = region
        dx, dy = int((x1 - x0) * CONTEXT) + 8, int((y1 - y0) * CONTEXT) + 8
        gx0, gy0, gx1, gy1 = max(0, x0 - dx), max(0, y0 - dy), min(w, x1 + dx), min(h, y1 + dy)
        found: np.ndarray = self._detector.get().boxes(image[gy0:gy1, gx0:gx1])
        return found + np.array([gx0, gy0, gx0, gy0], np.float32)


def heads(mask: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The head part of a person mask: its pixels in the top :data:`HEAD` of each person box,
    grown a little (a face model would do better; this errs towards hiding more)."""
    h, w = mask.shape
    top = np.zeros((h, w), np.uint8)
    for x0, y0, x1, y1 in np.asarray(boxes, np.float32).reshape(-1, 4):
        bh = y1 - y0
        top[max(0, int(y0 - 0.05 * bh)) : max(0, int(y0 + HEAD * bh) + 1), max(0, int(x0)) : max(0, int(x1) + 1)] = 1
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return grown & (top > 0)


def box_mask(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """A bool mask of pixel ``boxes``."""
    m = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in np.asarray(boxes, np.float32).reshape(-1, 4):
        m[max(0, int(y0)) : max(0, int(np.ceil(y1))), max(0, int(x0)) : max(0, int(np.ceil(x1)))] = True
    return m
