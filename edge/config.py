"""Typed configuration: one YAML file, validated up front by pydantic v2.

Every section forbids unknown keys so a typo is an error, not a silently ignored setting.
``${VAR}`` in any string is replaced from the environment, so secrets (RTSP and MQTT
passwords) can stay out of the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from edge.errors import ConfigError
from edge.rules.config import RulesConfig

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Point = tuple[Fraction, Fraction]


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
        default_factory=lambda: ["vehicle", "car", "truck", "bus", "motorcycle", "van"],
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

    _poly = field_validator("coordinates")(_check_polygon)


class MotionConfig(Strict):
    """Motion gating: skip inference on frames where nothing moves."""

    enabled: bool = True
    frame_height: int = Field(100, ge=16, le=1080, description="analysis height in pixels")
    threshold: int = Field(25, ge=1, le=255, description="per-pixel change to count as motion")
    min_area: Fraction = Field(0.002, description="changed fraction of the frame that is motion")
    max_skip: int = Field(25, ge=1, description="infer at least every N sampled frames even without motion")


class DetectConfig(Strict):
    """What to run on sampled frames."""

    fps: float = Field(5.0, gt=0, le=120, description="frames per second sent to the detector")
    width: int | None = Field(None, ge=32, le=7680, description="resize frames to this width")
    height: int | None = Field(None, ge=32, le=4320)
    model: str = "vehicle-detection-0200"
    attributes_model: str | None = Field(
        "vehicle-attributes-recognition-barrier-0039",
        description="per-vehicle type + colour classifier run on track crops (null to disable)",
    )
    classifier_model: str | None = Field(
        None, description="optional whole-frame classifier: state events say which class is on screen and how long"
    )
    classifier_min_score: Fraction = Field(0.5, description="a class below this score counts as no class")
    classifier_min_frames: int = Field(2, ge=1, description="classified frames a new class must hold to count")
    classifier_labels: list[str] = Field(default_factory=list, description="classes to report; empty = all")


class TrackerConfig(Strict):
    """Multi-object tracker (ByteTrack-style two-stage association)."""

    min_hits: int = Field(3, ge=1, description="detections before a track starts")
    max_age: float = Field(2.0, gt=0, description="seconds without a match before a track ends")
    iou_threshold: Fraction = Field(0.2, description="minimum IoU to associate")
    high_score: Fraction = Field(0.5, description="detections above this start tracks")
    low_score: Fraction = Field(0.1, description="detections above this only extend tracks")
    update_interval: float = Field(
        5.0, ge=0, description="seconds between update events of one track (0 = every frame)"
    )


class ReconnectConfig(Strict):
    """Reconnect with capped exponential backoff and a stall watchdog."""

    initial_delay: float = Field(0.5, gt=0)
    max_delay: float = Field(30.0, gt=0)
    stall_timeout: float = Field(10.0, gt=0, description="seconds without a frame -> reconnect")
    open_timeout: float = Field(10.0, gt=0)


class PlateListsConfig(Strict):
    """Allow and watch lists, matched with a small edit-distance tolerance."""

    allow: list[str] = Field(default_factory=list, description="plates that are let in / not alerted")
    watch: list[str] = Field(default_factory=list, description="plates that raise an alert")
    max_distance: int = Field(1, ge=0, le=3, description="edit operations tolerated in a match")


class PlateConsensusConfig(Strict):
    """How reads of one tracked vehicle are merged."""

    similarity: Fraction = Field(0.8, description="Jaro-Winkler similarity grouping reads of one plate")
    min_reads: int = Field(1, ge=1, description="reads needed before a plate is reported")
    improve_margin: Fraction = Field(0.05, description="confidence gain needed to report an update")


class PlatesConfig(Strict):
    """Licence-plate detection and reading for one camera."""

    enabled: bool = True
    detector_model: str = "lpd-yunet-plate"
    ocr_model: str = Field(
        "ppocr-v4", description="ppocr-v4, or license-plate-recognition-barrier-0001 (LPRNet) for Chinese plates"
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
        48, ge=8, le=4000, description="pixels: smaller (distant) vehicles are not read, their plates are unreadable"
    )
    reads_per_track: int = Field(
        10, ge=1, le=1000, description="plate reads per vehicle track: bounds the cost of a parked car"
    )
    top_n: int = Field(3, ge=1, le=20, description="text candidates per plate")
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
            try:
                re.compile(item)
            except re.error as err:
                raise ValueError(f"{item!r} is neither a region code nor a valid regex: {err}") from None
        return value

    @model_validator(mode="after")
    def _check(self) -> PlatesConfig:
        if self.min_chars > self.max_chars:
            raise ValueError("min_chars must not exceed max_chars")
        if self.publish != "text" and not (self.hash_salt and self.hash_salt.get_secret_value()):
            raise ValueError("publish: hash needs a non-empty hash_salt")
        return self


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
    objects: ObjectsConfig = ObjectsConfig()
    motion: MotionConfig = MotionConfig()
    tracker: TrackerConfig = TrackerConfig()
    reconnect: ReconnectConfig = ReconnectConfig()
    plates: PlatesConfig | None = Field(None, description="licence-plate reading on vehicle tracks")
    max_frame_pixels: int = Field(
        4096 * 4096,
        ge=64 * 64,
        le=8192 * 8192,
        description="decoded frames above this many pixels: downscaled by ffmpeg (live) or refused (files)",
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


class ModelsConfig(Strict):
    """Where models come from and where they are cached."""

    cache_dir: Path = Field(
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
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_insecure: bool = False
    tls: bool = Field(False, description="use TLS with the system CAs (implied by tls_ca / tls_cert)")
    max_inflight: int = Field(20, ge=1, le=1000, description="unacknowledged messages at a time")
    reconnect_min_delay: float = Field(1.0, gt=0, description="first reconnect delay, seconds")
    reconnect_max_delay: float = Field(30.0, gt=0, description="reconnect backoff cap, seconds")
    drain_timeout: float = Field(5.0, ge=0, description="on shutdown, seconds to keep sending the backlog")
    stats_interval: float = Field(60.0, gt=0)
    snapshots: bool = Field(False, description="publish a small JPEG crop per track on its own topic")
    home_assistant: bool = Field(False, description="publish Home Assistant MQTT discovery")


class OutboxConfig(Strict):
    """Durable SQLite outbox between the pipeline and MQTT."""

    path: Path = Path("edge-outbox.sqlite3")
    max_bytes: int = Field(256 * 1024 * 1024, ge=64 * 1024, description="disk budget")
    when_full: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL", description="SQLite sync: NORMAL survives a killed process, FULL also a power cut"
    )


class OutputsConfig(Strict):
    """Sinks other than MQTT."""

    jsonl: Path | None = Field(None, description="append events as JSON lines to this file")
    stdout: bool = False


class MetricsConfig(Strict):
    """Prometheus endpoint."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9108, ge=1, le=65535)


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
    rules: RulesConfig = Field(default_factory=RulesConfig)

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


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(value: Any, path: str, problems: list[str]) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                problems.append(f"{path or '<root>'}: environment variable ${{{name}}} is not set")
                return ""
            return os.environ[name]

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else str(k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def format_validation_error(err: ValidationError) -> list[str]:
    """One line per problem: ``field.path: message``. Input values are left out (may be secrets)."""
    lines = []
    for e in err.errors(include_input=False, include_url=False):
        loc = ""
        for part in e["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        lines.append(f"{loc or '<root>'}: {e['msg']}")
    return lines


def parse_config(data: Any, source: str = "<config>") -> AppConfig:
    """Validate already-loaded YAML data. Raises ConfigError listing every problem."""
    problems: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    data = _expand_env(data, "", problems)
    try:
        cfg = AppConfig.model_validate(data)
    except ValidationError as err:
        problems.extend(format_validation_error(err))
        cfg = None
    if problems or cfg is None:
        raise ConfigError(f"{source}: {len(problems)} problem(s)\n  " + "\n  ".join(problems))
    return cfg


def load_config(path: str | Path) -> AppConfig:
    """Load and validate a YAML config file. Raises ConfigError naming the file and fields."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}:{where} is not valid YAML: {getattr(err, 'problem', err)}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read config file {p}: {err}") from None
    return parse_config(data, str(p))


def config_for_video(url: str, **camera: Any) -> AppConfig:
    """A one-camera config with defaults, for ``edge replay`` and ``edge demo``."""
    return parse_config({"cameras": {"camera": {"url": url, **camera}}}, "<defaults>")
