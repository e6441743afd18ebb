"""``commands:``, ``metrics:``, ``update:`` and ``watchdog:``: the appliance as a service -
operator commands, the Prometheus/health endpoint, signed updates, the hang watchdog."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from edge.config.schema.base import MAX_COUNT, MAX_SECONDS, FilePath, Strict


class WatchdogConfig(Strict):
    """The appliance's own watchdog (``edge run``): a hang ends the process non-zero (exit 70,
    or 1 from the native fallback) so the service manager restarts it; logs show the stacks."""

    enabled: bool = True
    startup_timeout: float = Field(300.0, gt=0, description="seconds for models to load and every camera to start")
    stuck_timeout: float = Field(
        60.0, gt=0, description="seconds one frame may take in a camera thread while its reader has frames"
    )
    shutdown_timeout: float = Field(30.0, gt=0, description="seconds after SIGTERM before the process is ended hard")


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
