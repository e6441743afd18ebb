"""``cameras.<name>``: where a camera is read (URL, reconnects, decoding) and the sections
that say what is done with it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from edge.config.schema.base import MAX_SECONDS, Name, Point, Polygon, Strict, check_polygon
from edge.config.schema.detect import DetectConfig, MotionConfig, ObjectsConfig, TrackerConfig
from edge.config.schema.geometry import LineConfig, ZoneConfig
from edge.config.schema.plates import PlatesConfig
from edge.config.schema.privacy import PrivacyConfig


class ReconnectConfig(Strict):
    """Reconnect with capped exponential backoff and a stall watchdog."""

    initial_delay: float = Field(0.5, gt=0, le=MAX_SECONDS)
    max_delay: float = Field(30.0, gt=0, le=MAX_SECONDS)
    stall_timeout: float = Field(10.0, gt=0, le=MAX_SECONDS, description="seconds without a frame -> reconnect")
    open_timeout: float = Field(10.0, gt=0, le=MAX_SECONDS)

    @model_validator(mode="after")
    def _order(self) -> ReconnectConfig:
        if self.initial_delay > self.max_delay:
            raise ValueError("initial_delay must not exceed max_delay")
        return self


HwAccel = Literal["auto", "vaapi", "vdpau", "cuda", "nvdec", "qsv", "drm", "vulkan", "opencl", "videotoolbox"]


class EventsDetailConfig(Strict):
    """A camera's ``events:``: what leaves the device (docs/events.md, detail levels)."""

    detail: Literal["tracks", "crossings", "counts"] = Field(
        "tracks", description="tracks: everything; crossings: no track/plate events; counts: count, anomaly, screentime"
    )


class CameraConfig(Strict):
    """One camera: where to read it and what to do with it."""

    url: str = Field(description="rtsp://, http(s)://, file path, or /dev/videoN")
    enabled: bool = True
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    realtime: bool = Field(True, description="files: pace at their own fps (False: as fast as possible)")
    loop: bool = Field(False, description="files: start again at the end")
    detect: DetectConfig = DetectConfig()
    masks: list[Polygon] = Field(default_factory=list, description="areas where objects are ignored")
    zones: dict[Name, ZoneConfig] = Field(default_factory=dict)
    lines: dict[Name, LineConfig] = Field(default_factory=dict, description="directed counting lines")
    objects: ObjectsConfig = ObjectsConfig()
    motion: MotionConfig = MotionConfig()
    tracker: TrackerConfig = TrackerConfig()
    reconnect: ReconnectConfig = ReconnectConfig()
    plates: PlatesConfig | None = Field(None, description="licence-plate reading on vehicle tracks")
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig, description="masking of pictures that leave")
    max_frame_pixels: int = Field(
        4096 * 4096,
        ge=64 * 64,
        le=8192 * 8192,
        description="decoded frames above this many pixels: downscaled by ffmpeg (live) or refused (files)",
    )
    events: EventsDetailConfig = Field(default_factory=EventsDetailConfig, description="what leaves the device")
    priority: float = Field(
        1.0, gt=0, le=100, description="share of inference when cameras compete (2 = twice the share of 1)"
    )
    decode: Literal["all", "fast", "nonref", "key"] = Field(
        "all",
        description="live: frames ffmpeg decodes; fast decodes all but skips H.264 deblocking (~22% less decode "
        "CPU, slightly blockier frames); nonref skips non-reference frames, key decodes key frames only "
        "(for detect fps far below the stream's; the sampler then picks from what is decoded)",
    )
    # hardware decode (live sources; files are decoded by OpenCV in software): unavailable -> one
    # warning, software decode (edge.sources.ffmpeg)
    hwaccel: HwAccel | None = Field(None, description="ffmpeg -hwaccel, e.g. vaapi (Intel), cuda, drm")
    hwaccel_device: str | None = Field(None, description="ffmpeg -hwaccel_device, e.g. /dev/dri/renderD128")
    decoder: str | None = Field(
        None,
        pattern=r"^[a-z0-9_]{2,40}$",
        description="ffmpeg decoder (-c:v), e.g. h264_v4l2m2m (Pi 4), h264_nvv4l2dec (Jetson), h264_cuvid, h264_qsv",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("url must not be empty")
        from edge.sources.kinds import scheme_problem  # lazy: edge.sources imports edge.config

        problem = scheme_problem(v)  # the registered source types decide (edge.sources.kinds)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("masks")
    @classmethod
    def _masks(cls, v: list[list[Point]]) -> list[list[Point]]:
        for poly in v:
            check_polygon(poly)
        return v
