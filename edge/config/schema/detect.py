"""A camera's ``detect:``, ``objects:``, ``motion:`` and ``tracker:`` sections: what runs on
sampled frames, which labels are kept, motion gating and the tracker."""

from __future__ import annotations

from pydantic import Field, model_validator

from edge.config.schema.base import MAX_COUNT, MAX_SECONDS, Fraction, Strict


class ObjectFilter(Strict):
    """Per-label filter. Areas are fractions of the frame area."""

    min_score: Fraction = 0.5
    min_area: Fraction = 0.0
    max_area: Fraction = Field(0.9, description="boxes covering nearly the whole frame are almost always false")

    @model_validator(mode="after")
    def _area_order(self) -> ObjectFilter:
        if self.min_area > self.max_area:
            raise ValueError("min_area must not exceed max_area")
        return self


class ObjectsConfig(Strict):
    """Which labels to keep and how to filter them."""

    track: list[str] = Field(
        default_factory=lambda: ["vehicle", "car", "truck", "bus", "motorcycle", "bicycle", "van"],
        description="labels to keep; empty keeps every label",
    )
    filter: ObjectFilter = ObjectFilter()
    filters: dict[str, ObjectFilter] = Field(default_factory=dict, description="per-label overrides")

    vehicle_types: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "car": ["car", "sedan"],
            "van": ["van", "pickup_suv_van"],
            "truck": ["truck"],
            "bus": ["bus", "large_veh_bus"],
            "motorcycle": ["motorcycle", "motorbike"],
            "bicycle": ["bicycle"],
        },
        description="the one vehicle-type vocabulary: type -> detector labels and attribute values that mean it",
    )
    vehicle_labels: list[str] = Field(
        default_factory=lambda: ["vehicle", "bicycle", "bike"],
        description="labels that are vehicles without naming a type (the attributes model names it)",
    )

    def filter_for(self, label: str) -> ObjectFilter:
        """The filter that applies to ``label``."""
        return self.filters.get(label, self.filter)


class MotionConfig(Strict):
    """Motion gating: skip inference on frames where nothing moves."""

    enabled: bool = True
    frame_height: int = Field(100, ge=16, le=1080, description="analysis height in pixels")
    threshold: int = Field(25, ge=1, le=255, description="per-pixel change to count as motion")
    min_area: Fraction = Field(0.002, description="changed fraction of the frame that is motion")
    max_skip: int = Field(
        25, ge=1, le=MAX_COUNT, description="infer at least every N sampled frames even without motion"
    )


class DetectConfig(Strict):
    """What to run on sampled frames."""

    fps: float = Field(5.0, gt=0, le=120, description="frames per second sent to the detector")
    burst_fps: float | None = Field(
        10.0,
        gt=0,
        le=120,
        description="detector rate while a track moves fast or near a counting line (null: always fps)",
    )
    width: int | None = Field(None, ge=32, le=7680, description="resize frames to this width")
    height: int | None = Field(None, ge=32, le=4320)
    # INT8 builds of the OMZ models (docs/convert.md): same tracks, types and colours on the shared
    # videos, 1.15-1.3x faster here. Without the toolchain or a mirror holding them, their sources run.
    model: str = "vehicle-detection-0200-openvino-int8"
    attributes_model: str | None = Field(
        "vehicle-attributes-recognition-barrier-0039-openvino-int8",
        description="per-vehicle type + colour classifier run on track crops (null to disable)",
    )
    type_model: str | None = Field(
        "yolox-nano-coco",
        description="COCO detector run on a few crops per vehicle track to tell its type (null: attributes model only)",
    )
    classifier_model: str | None = Field(
        None, description="optional whole-frame classifier: state events say which class is on screen and how long"
    )
    classifier_fps: float | None = Field(
        None, gt=0, le=120, description="whole-frame classifications per second, motion or not (default: detect.fps)"
    )
    classifier_min_score: Fraction = Field(0.5, description="a class below this score counts as no class")
    classifier_min_frames: int = Field(
        2, ge=1, le=MAX_COUNT, description="classified frames a new class must hold to count"
    )
    classifier_labels: list[str] = Field(default_factory=list, description="classes to report; empty = all")

    @property
    def sample_fps(self) -> float:
        """Rate at which the reader hands frames on: the burst rate when that is higher."""
        return max(self.fps, self.burst_fps or 0.0)


class TrackerConfig(Strict):
    """Multi-object tracker (ByteTrack-style two-stage association)."""

    min_hits: int = Field(3, ge=1, le=MAX_COUNT, description="detections before a track starts")
    max_age: float = Field(2.0, gt=0, le=MAX_SECONDS, description="seconds without a match before a track ends")
    iou_threshold: Fraction = Field(0.2, description="minimum IoU to associate")
    high_score: Fraction = Field(0.5, description="detections above this start tracks")
    low_score: Fraction = Field(0.1, description="detections above this only extend tracks")
    update_interval: float = Field(
        5.0, ge=0, le=MAX_SECONDS, description="seconds between update events of one track (0 = every frame)"
    )
