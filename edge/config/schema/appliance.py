"""The whole file: :class:`AppConfig`, one field per top-level section."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from edge.config.messages import field_path
from edge.config.schema.base import Name, Strict
from edge.config.schema.camera import CameraConfig
from edge.config.schema.counts import CountsConfig
from edge.config.schema.delivery import MqttConfig, OutboxConfig, OutputsConfig
from edge.config.schema.runtime import ModelsConfig, RuntimeConfig
from edge.config.schema.service import CommandsConfig, MetricsConfig, UpdateConfig, WatchdogConfig
from edge.rules.config import RulesConfig


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
        }  # runtime.providers reach the ONNX backend through the run's model pool (edge.app.models.make_pool)

    def reference_problems(self) -> list[str]:
        """Cross-field problems, one ``field.path: message`` line each: rules naming cameras, zones,
        lines, roads, class labels or vehicle types this config cannot produce."""
        from edge.rules.references import config_problems  # it reads the model registry

        return [f"{field_path(loc)}: {msg}" for loc, msg in config_problems(self)]
