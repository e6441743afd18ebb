"""Typed configuration: one YAML file, validated up front by pydantic v2.

Every section forbids unknown keys so a typo is an error, not a silently ignored setting.
``${VAR}`` in any string is replaced from the environment, so secrets (RTSP and MQTT
passwords) can stay out of the file; ``${VAR:-default}`` falls back to ``default``.

The file is hostile input as far as the loader is concerned: it is read with a YAML loader that
refuses duplicate keys, deep nesting and alias expansion past fixed limits, and every number
is finite and bounded, so a config that passes ``edge config check`` cannot hang the check
nor crash the appliance later.

Where things are:

* ``schema/``: the sections, one module each - ``base`` (strict model, bounded numbers, names,
  polygons), ``camera`` (URL, reconnects, decoding), ``detect`` (detect, objects, motion,
  tracker), ``geometry`` (zones, lines), ``plates``, ``privacy``, ``runtime`` (runtime, models),
  ``delivery`` (mqtt, outbox, outputs), ``service`` (commands, metrics, update, watchdog),
  ``counts``, and ``appliance`` (:class:`AppConfig`, the whole file; ``rules:`` is
  :mod:`edge.rules.config`). A new setting goes in its section's module.
* ``loader``: the hardened YAML loader, the size/depth/alias limits and ``${VAR}`` expansion.
* ``parse``: loaded data -> a validated model, every problem in one ConfigError.
* ``messages`` and ``hints``: one-line ``field.path: problem`` messages, "did you mean" hints.
* ``check``: ``edge config check``.

Everything public is importable from ``edge.config`` itself.
"""

from edge.config.check import CheckResult, check_config
from edge.config.loader import (
    MAX_CHARS,
    MAX_DEPTH,
    MAX_ENV_REFS,
    MAX_FILE_BYTES,
    MAX_NODES,
    ConfigLoader,
    LimitError,
    load_yaml,
)
from edge.config.messages import format_validation_error
from edge.config.parse import ModelT, config_for_video, load_config, load_model, parse_config, parse_model
from edge.config.schema.appliance import AppConfig
from edge.config.schema.base import MAX_COUNT, MAX_SECONDS, FilePath, Fraction, Name, Point, Polygon, Strict
from edge.config.schema.camera import CameraConfig, EventsDetailConfig, HwAccel, ReconnectConfig
from edge.config.schema.counts import CountsConfig
from edge.config.schema.delivery import MqttConfig, OutboxConfig, OutputsConfig
from edge.config.schema.detect import DetectConfig, MotionConfig, ObjectFilter, ObjectsConfig, TrackerConfig
from edge.config.schema.geometry import LineConfig, ZoneConfig
from edge.config.schema.plates import PlateConsensusConfig, PlateListsConfig, PlatesConfig
from edge.config.schema.privacy import MaskMode, PrivacyConfig
from edge.config.schema.runtime import ORT_PROVIDERS, ModelsConfig, RuntimeConfig
from edge.config.schema.service import CommandsConfig, MetricsConfig, UpdateConfig, WatchdogConfig
from edge.errors import ConfigError

__all__ = [
    "MAX_CHARS",
    "MAX_COUNT",
    "MAX_DEPTH",
    "MAX_ENV_REFS",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "MAX_SECONDS",
    "ORT_PROVIDERS",
    "AppConfig",
    "CameraConfig",
    "CheckResult",
    "CommandsConfig",
    "ConfigError",
    "ConfigLoader",
    "CountsConfig",
    "DetectConfig",
    "EventsDetailConfig",
    "FilePath",
    "Fraction",
    "HwAccel",
    "LimitError",
    "LineConfig",
    "MaskMode",
    "MetricsConfig",
    "ModelT",
    "ModelsConfig",
    "MotionConfig",
    "MqttConfig",
    "Name",
    "ObjectFilter",
    "ObjectsConfig",
    "OutboxConfig",
    "OutputsConfig",
    "PlateConsensusConfig",
    "PlateListsConfig",
    "PlatesConfig",
    "Point",
    "Polygon",
    "PrivacyConfig",
    "ReconnectConfig",
    "RuntimeConfig",
    "Strict",
    "TrackerConfig",
    "UpdateConfig",
    "WatchdogConfig",
    "ZoneConfig",
    "check_config",
    "config_for_video",
    "format_validation_error",
    "load_config",
    "load_model",
    "load_yaml",
    "parse_config",
    "parse_model",
]
