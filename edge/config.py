"""Typed configuration: one YAML file, validated up front by pydantic v2.

Every section forbids unknown keys so a typo is an error, not a silently ignored setting.
``${VAR}`` in any string is replaced from the environment, so secrets (RTSP and MQTT
passwords) can stay out of the file; ``${VAR:-default}`` falls back to ``default``.

The file is hostile input as far as the loader is concerned: it is read with a YAML loader that
refuses duplicate keys, deep nesting and alias expansion past fixed limits, and every number
is finite and bounded, so a config that passes ``edge config check`` cannot hang the check
nor crash the appliance later.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from edge.config_hints import did_you_mean
from edge.errors import ConfigError
from edge.redact import redact_text
from edge.rules.config import RulesConfig
from edge.rules.schedule import zone

# Bounds for every number: anything past them is a typo, and unbounded values crash at run
# time (threading waits above threading.TIMEOUT_MAX, int(inf) in the MQTT backoff).
MAX_SECONDS = 86_400.0  # one day: the longest delay, timeout or interval that makes sense
MAX_COUNT = 100_000  # frames, hits, reads ...


def _plain_path(value: Path) -> Path:
    # A NUL byte passes validation but makes every open() fail at run time.
    if "\x00" in str(value):
        raise ValueError("a path must not contain a NUL character")
    return value


Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Point = tuple[Fraction, Fraction]
FilePath = Annotated[Path, AfterValidator(_plain_path)]


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, floats are finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _check_polygon(points: list[Point]) -> list[Point]:
    if len(points) < 3:
        raise ValueError("a polygon needs at least 3 points")
    return points


Polygon = Annotated[list[Point], Field(description="normalised [x, y] points, >= 3")]


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


class ZoneConfig(Strict):
    """A named polygon; an object is in it when its box's bottom centre is inside."""

    coordinates: Polygon
    objects: list[str] = Field(default_factory=list, description="labels it applies to; empty = all")
    role: Name | None = Field(None, description="what the zone is for (e.g. entry, exit, parking); on zone events")

    _poly = field_validator("coordinates")(_check_polygon)


class LineConfig(Strict):
    """A directed counting line: a track whose bottom centre crosses it makes a ``line`` event,
    ``dir: in`` when it moves the ``in`` way (up/down/left/right on screen), else ``out``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    points: list[Point] = Field(description="two distinct normalised [x, y] end points")
    in_: Literal["up", "down", "left", "right"] = Field(alias="in", description="screen direction that counts as in")
    road: str | None = Field(None, description="road or gate the line is on (on line events)")
    role: Literal["entry", "exit", "both"] | None = Field(None, description="entry, exit or both (on line events)")

    @model_validator(mode="after")
    def _shape(self) -> LineConfig:
        if len(self.points) != 2:
            raise ValueError("a line needs exactly 2 points")
        (x0, y0), (x1, y1) = self.points
        length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
        if length < 1e-3:
            raise ValueError("the 2 points of a line must be distinct")
        dx, dy = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}[self.in_]
        # crossing "in" means moving along the line's normal; a line parallel to it has no in side
        if abs((x1 - x0) * dy - (y1 - y0) * dx) / length < 0.2:
            raise ValueError(f"'in: {self.in_}' runs along the line; use a direction across it")
        return self


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


class PlateListsConfig(Strict):
    """Allow and watch lists, matched with a small edit-distance tolerance."""

    allow: list[str] = Field(default_factory=list, description="plates that are let in / not alerted")
    watch: list[str] = Field(default_factory=list, description="plates that raise an alert")
    max_distance: int = Field(1, ge=0, le=3, description="edit operations tolerated in a match")


class PlateConsensusConfig(Strict):
    """How reads of one tracked vehicle are merged."""

    similarity: Fraction = Field(0.8, description="Jaro-Winkler similarity grouping reads of one plate")
    min_reads: int = Field(1, ge=1, le=MAX_COUNT, description="reads needed before a plate is reported")
    improve_margin: Fraction = Field(0.05, description="confidence gain needed to report an update")


_MAX_REGEX = 512  # a plate format is a few dozen characters


class PlatesConfig(Strict):
    """Licence-plate detection and reading for one camera."""

    enabled: bool = True
    detector_model: str = "lpd-yunet-plate"
    ocr_model: str = Field(
        "cct-xs-v1-global-plate-ocr",
        description="cct-xs-v1-global-plate-ocr (plate-specific, Latin plates of many countries), ppocr-v4 "
        "(general text recogniser), or license-plate-recognition-barrier-0001 (LPRNet) for Chinese plates",
    )
    backend: Literal["onnx", "openvino"] | None = Field(
        None, description="default: the manifest's first installed (OpenVINO, then ONNX Runtime)"
    )
    regions: list[str] = Field(
        default_factory=list,
        description="region codes (br, eu, de, us, za ...) or custom regexes over normalised text",
    )
    strict_formats: bool = Field(False, description="drop reads that fit none of the region formats")
    detect_threshold: Fraction = Field(0.02, description="YuNet score floor; low because reading validates candidates")
    max_plates: int = Field(3, ge=1, le=10, description="plate candidates read per image")
    tiles: bool = Field(True, description="retry large frames tile by tile when no confident read")
    min_chars: int = Field(4, ge=1, le=12)
    max_chars: int = Field(10, ge=1, le=16)
    min_confidence: Fraction = Field(0.5, description="reads below are not reported")
    min_vehicle_height: int = Field(
        48,
        ge=8,
        le=4000,
        description="pixels of the frame plates are read from (native with full_resolution): smaller (distant) "
        "vehicles are not read, their plates are unreadable",
    )
    full_resolution: bool = Field(
        True,
        description="crop plates from the camera's native frames (bounded by max_frame_pixels), not the "
        "detect.width ones: the camera reader then delivers native frames and the pipeline resizes for "
        "detection (more memory per buffered frame; see docs/plates.md for the cost)",
    )
    reads_per_track: int = Field(
        10, ge=1, le=1000, description="plate reads per vehicle track: bounds the cost of a parked car"
    )
    top_n: int = Field(3, ge=1, le=20, description="text candidates per plate")
    confirm_below: Fraction = Field(
        0.0, description="slot reader: reads less confident than this get a PP-OCRv4 second opinion (0 = never)"
    )
    lists: PlateListsConfig = Field(default_factory=PlateListsConfig)
    consensus: PlateConsensusConfig = Field(default_factory=PlateConsensusConfig)
    publish: Literal["text", "hash", "both"] = Field(
        "text", description="hash: publish HMAC-SHA256(salt, plate) instead of the text"
    )
    hash_salt: SecretStr | None = Field(None, description="secret salt for hashing; use ${VAR}")

    @field_validator("regions")
    @classmethod
    def _regions_known(cls, value: list[str]) -> list[str]:
        for item in value:
            from edge.plates.formats import REGION_FORMATS, REGION_GROUPS  # lazy: pulls in numpy

            key = item.strip().lower()
            if key in REGION_FORMATS or key in REGION_GROUPS:
                continue
            if len(item) > _MAX_REGEX:
                raise ValueError(f"a custom plate regex is limited to {_MAX_REGEX} characters, got {len(item)}")
            try:
                with warnings.catch_warnings():  # "possible nested set" etc. would break the one-line output
                    warnings.simplefilter("ignore")
                    re.compile(item)
            except (re.error, RecursionError, OverflowError) as err:  # nesting too deep for sre: not re.error
                why = err if isinstance(err, re.error) else "too deeply nested"
                raise ValueError(f"{item!r} is neither a region code nor a valid regex: {why}") from None
        return value

    @model_validator(mode="after")
    def _check(self) -> PlatesConfig:
        if self.min_chars > self.max_chars:
            raise ValueError("min_chars must not exceed max_chars")
        if self.publish != "text" and not (self.hash_salt and self.hash_salt.get_secret_value()):
            raise ValueError("publish: hash needs a non-empty hash_salt")
        return self


MaskMode = Literal["blur", "pixelate", "fill", "off"]


class PrivacyConfig(Strict):
    """What is masked in every picture that leaves the device (snapshots, evidence, thumbnails,
    ``edge replay --annotate``); see docs/privacy.md."""

    people: MaskMode = Field("blur", description="whole people, segmented on person-box crops")
    faces: MaskMode = Field("blur", description="heads: the top of each person's mask (for people: off)")
    plates: MaskMode | Literal["auto"] = Field(
        "auto", description="licence plates; auto = blur when plates.publish is hash or both, else off"
    )
    on_failure: Literal["drop", "blur"] = Field(
        "drop", description="a model that fails: drop the picture, or send it fully blurred"
    )
    detector: str = Field("person-vehicle-bike-detection-crossroad-0078", description="person detector model")
    segmenter: str = Field("mediapipe-selfie-segmentation", description="person segmentation model (LiteRT)")


HwAccel = Literal["auto", "vaapi", "vdpau", "cuda", "nvdec", "qsv", "drm", "vulkan", "opencl", "videotoolbox"]

# ONNX Runtime execution provider names (builds differ in which they contain; edge checks at load)
ORT_PROVIDERS = (
    "CPUExecutionProvider",
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "NvTensorRTRTXExecutionProvider",
    "OpenVINOExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    "ROCMExecutionProvider",
    "MIGraphXExecutionProvider",
    "QNNExecutionProvider",
    "XnnpackExecutionProvider",
    "ACLExecutionProvider",
    "ArmNNExecutionProvider",
    "DnnlExecutionProvider",
    "NnapiExecutionProvider",
    "CANNExecutionProvider",
    "VitisAIExecutionProvider",
    "WebGpuExecutionProvider",
)


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
        scheme = v.split("://", 1)[0].lower() if "://" in v else ""
        if scheme and scheme not in {"rtsp", "rtsps", "http", "https", "file"}:
            raise ValueError(f"unsupported URL scheme {scheme!r} (rtsp, http(s), file path, /dev/videoN)")
        return v

    @field_validator("masks")
    @classmethod
    def _masks(cls, v: list[list[Point]]) -> list[list[Point]]:
        for poly in v:
            _check_polygon(poly)
        return v


class RuntimeConfig(Strict):
    """Inference runtime settings."""

    threads: int = Field(2, ge=1, le=64, description="inference threads per model")
    device: str = Field("CPU", description="OpenVINO device (CPU, GPU, NPU, MYRIAD on old releases)")
    precision: Literal["auto", "f32", "bf16", "f16"] = Field(
        "auto", description="OpenVINO inference precision; auto = the device's fastest (bf16 on recent CPUs)"
    )
    concurrency: int | None = Field(
        None, ge=1, le=64, description="camera frames processed at the same time (default: 2 per CPU core); fair shares"
    )
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        min_length=1,
        description="ONNX Runtime execution providers, best first; unavailable ones are skipped with one warning, "
        "CPUExecutionProvider is always the last resort",
    )
    provider_options: dict[str, dict[str, str | int | float | bool]] = Field(
        default_factory=dict,
        description="per-provider options, e.g. TensorrtExecutionProvider: {trt_fp16_enable: true}",
    )

    @field_validator("providers")
    @classmethod
    def _providers(cls, v: list[str]) -> list[str]:
        for p in v:
            if p not in ORT_PROVIDERS:
                raise ValueError(f"unknown ONNX Runtime execution provider {p!r}; known: {', '.join(ORT_PROVIDERS)}")
        if len(set(v)) != len(v):
            raise ValueError("a provider is listed twice")
        return v

    @model_validator(mode="after")
    def _options_for_listed(self) -> RuntimeConfig:
        extra = sorted(set(self.provider_options) - set(self.providers))
        if extra:
            raise ValueError(f"provider_options for providers not in providers: {', '.join(extra)}")
        return self


class WatchdogConfig(Strict):
    """The appliance's own watchdog (``edge run``): a hang ends the process non-zero (exit 70,
    or 1 from the native fallback) so the service manager restarts it; logs show the stacks."""

    enabled: bool = True
    startup_timeout: float = Field(300.0, gt=0, description="seconds for models to load and every camera to start")
    stuck_timeout: float = Field(
        60.0, gt=0, description="seconds one frame may take in a camera thread while its reader has frames"
    )
    shutdown_timeout: float = Field(30.0, gt=0, description="seconds after SIGTERM before the process is ended hard")


class ModelsConfig(Strict):
    """Where models come from and where they are cached."""

    cache_dir: FilePath = Field(
        default_factory=lambda: Path(os.environ.get("EDGE_MODEL_CACHE", "~/.cache/edge/models")).expanduser()
    )
    mirror: str | None = Field(
        None, description="folder or URL laid out <name>/<files>; default $EDGE_MODEL_MIRROR, else upstream"
    )


class MqttConfig(Strict):
    """MQTT delivery (see edge.events)."""

    host: str
    port: int = Field(1883, ge=1, le=65535)
    topic_prefix: Name = "edge"
    client_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    qos: Literal[0, 1, 2] = 1
    keepalive: int = Field(30, ge=5, le=3600)
    tls_ca: FilePath | None = None
    tls_cert: FilePath | None = None
    tls_key: FilePath | None = None
    tls_insecure: bool = False
    tls: bool = Field(False, description="use TLS with the system CAs (implied by tls_ca / tls_cert)")
    max_inflight: int = Field(20, ge=1, le=1000, description="unacknowledged messages at a time")
    reconnect_min_delay: float = Field(1.0, gt=0, le=MAX_SECONDS, description="first reconnect delay, seconds")
    reconnect_max_delay: float = Field(30.0, gt=0, le=MAX_SECONDS, description="reconnect backoff cap, seconds")
    drain_timeout: float = Field(
        5.0, ge=0, le=MAX_SECONDS, description="on shutdown, seconds to keep sending the backlog"
    )
    stats_interval: float = Field(60.0, gt=0, le=MAX_SECONDS)
    snapshots: bool = Field(False, description="publish a small JPEG crop per track on its own topic")
    home_assistant: bool = Field(False, description="publish Home Assistant MQTT discovery")

    @model_validator(mode="after")
    def _order(self) -> MqttConfig:
        if self.reconnect_min_delay > self.reconnect_max_delay:
            raise ValueError("reconnect_min_delay must not exceed reconnect_max_delay")
        return self


class OutboxConfig(Strict):
    """Durable SQLite outbox between the pipeline and MQTT."""

    path: FilePath = Path("edge-outbox.sqlite3")
    max_bytes: int = Field(256 * 1024 * 1024, ge=64 * 1024, le=1 << 40, description="disk budget (<= 1 TiB)")
    when_full: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL", description="SQLite sync: NORMAL survives a killed process, FULL also a power cut"
    )
    memory_max_bytes: int = Field(
        4 * 1024 * 1024,
        ge=0,
        le=1 << 30,
        description="events kept in memory while the outbox file cannot be written (disk full); the oldest go first",
    )


class CommandsConfig(Strict):
    """Operator commands over MQTT (``<prefix>/<device>/cmd/...``, see edge.commands)."""

    enabled: bool = True
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key; set it to require signed commands")
    max_bytes: int = Field(4096, ge=64, le=1024 * 1024, description="larger command payloads are refused")
    max_age_s: float = Field(
        300.0, gt=0, le=MAX_SECONDS, description="signed commands older than this are refused (replay guard)"
    )
    max_clock_skew_s: float = Field(
        30.0, ge=0, le=3600, description="signed commands dated further ahead of the device clock are refused"
    )
    db: Path | None = Field(None, description="feedback/replay SQLite file; default beside the outbox")
    recent_events: int = Field(5000, ge=100, le=1_000_000, description="events remembered for feedback look-ups")
    snapshots: int = Field(2000, ge=0, le=MAX_COUNT, description="snapshot crops kept for feedback export")
    queue: int = Field(256, ge=1, le=MAX_COUNT, description="commands waiting for the worker; more are answered busy")


class OutputsConfig(Strict):
    """Sinks other than MQTT."""

    jsonl: FilePath | None = Field(None, description="append events as JSON lines to this file")
    stdout: bool = False


class MetricsConfig(Strict):
    """Prometheus endpoint."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9108, ge=1, le=65535)
    health_camera_grace: float = Field(
        60.0, gt=0, le=MAX_SECONDS, description="/healthz is 503 when no camera has been up for this many seconds"
    )
    health_backlog_max_age: float = Field(
        300.0,
        gt=0,
        le=MAX_SECONDS,
        description="/healthz is 503 when the broker is disconnected and the oldest waiting event is older (s)",
    )


class UpdateConfig(Strict):
    """Signed remote config/model updates over MQTT (``cmd/update``, edge.update, docs/fleet.md)."""

    enabled: bool = False
    public_keys: list[FilePath] = Field(
        default_factory=list, max_length=16, description="Ed25519 public keys (PEM) allowed to sign updates"
    )
    health_timeout: float = Field(
        60.0, gt=0, le=MAX_SECONDS, description="seconds for every camera to come up after an update, else roll back"
    )
    max_age_s: float = Field(
        600.0, gt=0, le=MAX_SECONDS, description="signed updates older than this are refused (replay guard)"
    )
    max_clock_skew_s: float = Field(
        30.0, ge=0, le=3600, description="signed updates dated further ahead of the device clock are refused"
    )
    max_bytes: int = Field(512 * 1024, ge=1024, le=4 * 1024 * 1024, description="largest update command payload")
    state_dir: FilePath | None = Field(None, description="previous config, update state; default beside the config")

    @model_validator(mode="after")
    def _keys(self) -> UpdateConfig:
        if self.enabled and not self.public_keys:
            raise ValueError("public_keys: at least one Ed25519 public key is needed to accept updates")
        return self


class CountsConfig(Strict):
    """``counts:``: per line and interval, crossings by direction and type, zone occupancy and dwell
    (``count`` events, docs/events.md)."""

    enabled: bool = True
    interval_minutes: float = Field(
        15.0, ge=0.25, le=1440, description="minutes per count event, a divisor of a day, wall-clock aligned"
    )
    timezone: str | None = Field(None, description="IANA zone the intervals align to; default rules.timezone")

    @field_validator("interval_minutes")
    @classmethod
    def _divides_day(cls, v: float) -> float:
        if abs(1440 / v - round(1440 / v)) > 1e-9:
            raise ValueError("must divide a day (1440 minutes) evenly, e.g. 5, 15, 60")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None:
            zone(v)
        return v


class AppConfig(Strict):
    """The whole appliance configuration."""

    device_id: Name = "edge-1"
    cameras: dict[Name, CameraConfig] = Field(min_length=1)
    runtime: RuntimeConfig = RuntimeConfig()
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    mqtt: MqttConfig | None = None
    outbox: OutboxConfig = OutboxConfig()
    outputs: OutputsConfig = OutputsConfig()
    metrics: MetricsConfig = MetricsConfig()
    commands: CommandsConfig = CommandsConfig()
    rules: RulesConfig = Field(default_factory=RulesConfig)
    update: UpdateConfig = Field(default_factory=UpdateConfig)
    watchdog: WatchdogConfig = WatchdogConfig()
    counts: CountsConfig = Field(default_factory=CountsConfig)

    def model_options(self) -> dict[str, Any]:
        """How every model of this appliance is fetched and run: the keyword arguments shared by
        ``load_model`` and ``PlateReader`` (threads, device, precision, cache_dir, mirror)."""
        return {
            "threads": self.runtime.threads,
            "device": self.runtime.device,
            "precision": self.runtime.precision,
            "cache_dir": self.models.cache_dir,
            "mirror": self.models.mirror,
        }  # runtime.providers reach the ONNX backend through edge.inference.backends.onnx.set_providers

    def reference_problems(self) -> list[str]:
        """Cross-field problems, one ``field.path: message`` line each: rules naming cameras, zones,
        lines, roads, class labels or vehicle types this config cannot produce."""
        from edge.rules.references import config_problems  # it reads the model registry

        return [f"{_loc(loc)}: {msg}" for loc, msg in config_problems(self)]


# -- loading -------------------------------------------------------------------------------

MAX_FILE_BYTES = 2 * 1024 * 1024  # a config with long plate lists is a few hundred kB
MAX_DEPTH = 32  # the schema nests 6 levels; polygons add 2
MAX_NODES = 200_000  # values after alias expansion (billion laughs stops here)
MAX_CHARS = 8 * 1024 * 1024  # characters of text after alias expansion


class LimitError(yaml.MarkedYAMLError):
    """A YAML document the config loader refuses: too big, too deep, recursive, duplicate keys."""


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: Node) -> None:
    """Refuse a document whose aliases refer to themselves or expand past the limits.

    PyYAML shares an aliased node, so a billion-laughs file loads cheaply, but every later walk
    over the data (``${VAR}`` expansion, validation) visits each use. Sizes are computed per
    distinct node (memoised, iteratively: the expanded depth may be far beyond the recursion
    limit), so the check itself is linear in the file size.
    """
    nodes: dict[int, int] = {}
    chars: dict[int, int] = {}
    depth: dict[int, int] = {}
    entered: set[int] = set()  # entered, not finished: the ancestors of the current node
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        kids = _children(node)
        if finished:
            entered.discard(key)
            nodes[key] = 1 + sum(nodes[id(k)] for k in kids)
            own = len(node.value) if isinstance(node, ScalarNode) else 0
            chars[key] = own + sum(chars[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if nodes[key] > MAX_NODES or chars[key] > MAX_CHARS:
                raise LimitError(
                    problem=f"aliases expand this value to more than {MAX_NODES:,} values or {MAX_CHARS:,} "
                    "characters (an alias bomb?)",
                    problem_mark=node.start_mark,
                )
            if depth[key] > MAX_DEPTH:
                raise LimitError(
                    problem=f"aliases nest this value more than {MAX_DEPTH} levels deep", problem_mark=node.start_mark
                )
            continue
        if key in nodes:
            continue
        entered.add(key)
        stack.append((node, True))
        for kid in kids:
            if id(kid) in entered:
                raise LimitError(problem="an alias refers to the value that contains it", problem_mark=kid.start_mark)
            if id(kid) not in nodes:
                stack.append((kid, False))


try:
    from yaml._yaml import CParser  # libyaml: scanning a large file in C is ~30x faster

    class _SafeBase(Composer, CParser, SafeConstructor, Resolver):  # type: ignore[misc]
        """libyaml's event parser under PyYAML's Python composer (where the limits are checked)
        and safe constructor: ``CSafeLoader`` composes in C, out of reach of those checks."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

except ImportError:  # PyYAML built without libyaml
    _SafeBase = yaml.SafeLoader  # type: ignore[misc,assignment]


class ConfigLoader(_SafeBase):
    """A safe YAML loader for untrusted configs: duplicate keys, nesting deeper than
    :data:`MAX_DEPTH`, recursive aliases, alias expansion past :data:`MAX_NODES` and integers
    too long for Python are errors with a line number, never a hang, a crash or a silent pick."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:  # noqa: D102
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event: Any = self.peek_event()
                too_deep = f"nested too deep (more than {MAX_DEPTH} levels)"
                raise LimitError(problem=too_deep, problem_mark=event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: Any) -> MappingNode:  # noqa: D102
        node: MappingNode = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], int] = {}
        for key, _value in node.value:
            if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue  # "<<" merge keys may repeat and are overridden by design
            first = seen.setdefault((key.tag, key.value), key.start_mark.line + 1)
            if first != key.start_mark.line + 1:
                raise LimitError(
                    problem=f"duplicate key {_short(key.value)!r} (first at line {first})",
                    problem_mark=key.start_mark,
                )
        return node

    def compose_document(self) -> Node | None:  # noqa: D102
        node: Node | None = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node

    def construct_yaml_int(self, node: ScalarNode) -> int:  # noqa: D102
        try:
            return super().construct_yaml_int(node)  # type: ignore[no-any-return]
        except ValueError:  # Python refuses int() of more than 4,300 digits
            raise LimitError(problem="integer too long", problem_mark=node.start_mark) from None


ConfigLoader.add_constructor("tag:yaml.org,2002:int", ConfigLoader.construct_yaml_int)  # type: ignore[type-var]


def _short(text: str, limit: int = 60) -> str:
    """``text`` cut for an error message (keys can be megabytes long in a broken file)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ${NAME} or ${NAME:-default}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _path_part(key: Any) -> str:
    # Keys come from the file: keep them one short line in messages, without credentials (a
    # misplaced colon can turn "rtsp://user:pass@host" into a key).
    text = redact_text(key if isinstance(key, str) else repr(key))
    if not re.fullmatch(r"#?[A-Za-z0-9_-]+", text):  # "#3": a list item without a name (rules)
        text = repr(_short(text))
    return _short(text)


MAX_ENV_REFS = 1_000  # ${VAR} references in one file; a real config has a handful


class _EnvExpander:
    """``${VAR}`` -> ``env[VAR]`` in every string of the loaded data.

    The field path of a variable that is not set and has no default lands in ``unresolved``;
    without ``env`` (``--no-env``) the reference stays as written, otherwise it is a problem.
    """

    def __init__(self, env: Mapping[str, str] | None) -> None:
        self.env = dict(env) if env is not None else None  # a dict: os.environ lookups are slow
        self.problems: list[str] = []
        self.unresolved: set[str] = set()
        self.unset: set[str] = set()  # names of the variables behind ``unresolved``
        self.refs = 0

    def expand(self, value: Any, path: str = "") -> Any:
        """``value`` with every reference replaced; ConfigError past :data:`MAX_ENV_REFS`."""
        if isinstance(value, str):
            if "${" not in value:
                return value
            self.refs += value.count("${")
            if self.refs > MAX_ENV_REFS:
                raise ConfigError(f"more than {MAX_ENV_REFS} ${{VAR}} references")
            # Every reference ends with '}': past the last one nothing can match, so a
            # "${x:-" without a closing brace is not re-scanned to the end of a megabyte string
            # from each of up to MAX_ENV_REFS starts (quadratic).
            end = value.rfind("}") + 1
            return _ENV.sub(lambda m: self._one(m, path), value[:end]) + value[end:]
        if isinstance(value, dict):
            return {k: self.expand(v, f"{path}.{_path_part(k)}" if path else _path_part(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    def _one(self, m: re.Match[str], path: str) -> str:
        name, default = m.group(1), m.group(2)
        if self.env is not None and name in self.env:
            return self.env[name]
        if default is not None:
            return default
        self.unset.add(name)
        if self.env is None:
            self.unresolved.add(path)
            return m.group(0)
        if path not in self.unresolved:  # once per field, however often the field repeats it
            self.problems.append(
                f"{path or '<root>'}: environment variable ${{{name}}} is not set "
                f"(export {name}=... or write ${{{name}:-default}} in the file)"
            )
        self.unresolved.add(path)  # its validation errors would only repeat this one
        return ""


def _loc(parts: tuple[int | str, ...]) -> str:
    loc = ""
    for part in parts:
        loc += f"[{part}]" if isinstance(part, int) else (f".{_path_part(part)}" if loc else _path_part(part))
    return loc or "<root>"


def format_validation_error(err: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """One line per problem: ``field.path: message``. Input values are left out (may be secrets).
    Given the validated ``model``, an unknown key gets the closest field name as a hint."""
    lines = []
    for e in err.errors(include_input=False, include_url=False):
        line = f"{_loc(e['loc'])}: {e['msg']}"
        hint = did_you_mean(model, e["loc"]) if model is not None and e["type"] == "extra_forbidden" else None
        lines.append(f"{line} (did you mean '{hint}'?)" if hint else line)
    return lines


_MAX_LISTED = 50  # problems printed; a broken generated file can have thousands


ModelT = TypeVar("ModelT", bound=BaseModel)


def _validate(
    data: Any, source: str, env: Mapping[str, str] | None, model: type[ModelT]
) -> tuple[ModelT | None, Any, set[str]]:
    """Expand variables and validate as ``model``; ConfigError listing every problem. Returns
    (config, expanded data, names of unset variables); the config is None when ``env`` is None and
    only fields left as ``${VAR}`` failed."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    expander = _EnvExpander(env)
    try:
        data = expander.expand(data)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    problems, unresolved = expander.problems, expander.unresolved
    cfg: ModelT | None = None
    try:
        cfg = model.model_validate(data)
    except ValidationError as err:
        for line in format_validation_error(err, model):
            field = line.split(": ", 1)[0]
            if not any(field == u or field.startswith((u + ".", u + "[")) for u in unresolved):
                problems.append(line)
    if isinstance(cfg, AppConfig):
        problems += cfg.reference_problems()
    if problems:
        shown = problems[:_MAX_LISTED]
        if len(problems) > len(shown):
            shown.append(f"... and {len(problems) - len(shown)} more")
        raise ConfigError(f"{source}: {len(problems)} problem(s)\n  " + "\n  ".join(shown))
    return cfg, data, expander.unset


def parse_model(data: Any, model: type[ModelT], source: str) -> ModelT:
    """Expand ``${VAR}`` in already-loaded YAML data and validate it as ``model`` (the device
    config, or another config such as ``edge fleet``'s). Raises ConfigError listing every problem."""
    cfg, _, _ = _validate(data, source, os.environ, model)
    assert cfg is not None  # with an environment every failure is a problem
    return cfg


def parse_config(data: Any, source: str = "<config>") -> AppConfig:
    """Validate already-loaded YAML data. Raises ConfigError listing every problem."""
    return parse_model(data, AppConfig, source)


def load_yaml(text: str) -> Any:
    """Parse one YAML document with :class:`ConfigLoader` (raises ``yaml.YAMLError``)."""
    loader = ConfigLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _read(p: Path) -> Any:
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"{p}: {size:,} bytes is too large for a config file (limit {MAX_FILE_BYTES:,})")
        return load_yaml(p.read_text(encoding="utf-8"))
    except LimitError as err:
        mark = err.problem_mark
        where = f" line {mark.line + 1} column {mark.column + 1}:" if mark else ""
        raise ConfigError(f"{p}:{where} {err.problem}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or " ".join(str(err).split())
        if "nesting depth" in problem:  # PyYAML 6.0.4's libyaml caps nesting, scanning ahead of our check
            raise ConfigError(f"{p}:{where}: nested too deep (more than the YAML parser allows)") from None
        raise ConfigError(f"{p}:{where} is not valid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read config file {p}: {err}") from None


def load_model(path: str | Path, model: type[ModelT]) -> ModelT:
    """Read a YAML file with :class:`ConfigLoader`, expand ``${VAR}`` after parsing and validate it
    as ``model``. Raises ConfigError naming the file and fields."""
    p = Path(path)
    return parse_model(_read(p), model, str(p))


def load_config(path: str | Path) -> AppConfig:
    """Load and validate a YAML config file. Raises ConfigError naming the file and fields."""
    return load_model(path, AppConfig)


@dataclass(frozen=True)
class CheckResult:
    """What ``edge config check`` reports about a valid file."""

    device_id: str
    cameras: dict[str, bool]  # name -> enabled
    unchecked: list[str]  # variables left as ${VAR} (--no-env): the fields holding them were not checked


def check_config(path: str | Path, *, no_env: bool = False) -> CheckResult:
    """Validate a config file like :func:`load_config`. With ``no_env`` the environment is not
    read: ``${VAR:-default}`` takes its default and fields holding a ``${VAR}`` without one are
    not checked, so a config repository can be checked in CI without its secrets."""
    p = Path(path)
    cfg, data, unset = _validate(_read(p), str(p), None if no_env else os.environ, AppConfig)
    unchecked = sorted(unset)
    if cfg is not None:
        return CheckResult(cfg.device_id, {n: c.enabled for n, c in cfg.cameras.items()}, unchecked)
    # Only ${VAR} fields failed: describe the file from its data (valid everywhere else).
    cams = data.get("cameras") if isinstance(data.get("cameras"), dict) else {}
    return CheckResult(
        str(data.get("device_id", AppConfig.model_fields["device_id"].default)),
        {str(n): not (isinstance(c, dict) and c.get("enabled") is False) for n, c in cams.items()},
        unchecked,
    )


def config_for_video(url: str, **camera: Any) -> AppConfig:
    """A one-camera config with defaults, for ``edge replay`` and ``edge demo``."""
    return parse_config({"cameras": {"camera": {"url": url, **camera}}}, "<defaults>")
