"""``mqtt:``, ``outbox:`` and ``outputs:``: how events leave the device."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from edge.config.schema.base import MAX_SECONDS, FilePath, Name, Strict


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


class OutputsConfig(Strict):
    """Sinks other than MQTT."""

    jsonl: FilePath | None = Field(None, description="append events as JSON lines to this file")
    stdout: bool = False
