"""``edge fleet`` configuration (YAML), validated by pydantic like the device config.

```yaml
database: postgresql+psycopg://fleet@db/fleet   # default sqlite:///edge-fleet.sqlite3
mqtt: {host: broker, port: 1883, share_group: fleet}   # $share/fleet/edge/+/+/events/#
rules: {enabled: true, rules: [...]}            # the device rule engine on the merged stream
web: {port: 8080, users: {alice: "scrypt$..."}}  # or auth_header: X-Remote-User
metrics: {enabled: true, port: 9110}             # edge_fleet_* on /metrics, /healthz
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from edge.config import load_model, parse_model
from edge.rules.config import RulesConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FleetMqtt(_Strict):
    """The central broker."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    topic_prefix: str = Field("edge", pattern=r"^[A-Za-z0-9_.-]+$")
    client_id: str | None = Field(None, description="default edge-fleet-<pid>")
    username: str | None = None
    password: SecretStr | None = None
    tls_ca: Path | None = None
    share_group: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$", description="share event topics with other workers ($share/<group>/...)"
    )
    qos: Literal[0, 1] = 1
    snapshots: bool = Field(True, description="store JPEG snapshots (<prefix>/<device>/<camera>/snapshot/<id>)")


class FleetRules(RulesConfig):
    """The device rule engine's config, run on the merged stream; camera names are ``device/camera``."""

    enabled: bool = False
    state: Path | None = Field(None, description="SQLite file for the engine's open visits (default: in memory)")
    device_id: str = Field("fleet", description="commands for fleet anomalies go to <prefix>/<device_id>/cmd/")


class FleetWeb(_Strict):
    """The console."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    users: dict[str, str] = Field(default_factory=dict, description="name -> scrypt hash (edge fleet hash-password)")
    auth_header: str | None = Field(None, description="trust this header's user name (set by an upstream proxy)")
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    secure_cookie: bool = Field(False, description="mark the session cookie Secure (behind HTTPS)")


class FleetCommands(_Strict):
    """Commands the console sends to devices."""

    secret: SecretStr | None = Field(None, description="HMAC key (the devices' commands.secret)")
    reply_timeout: float = Field(10.0, gt=0, le=300)


class FleetIngest(_Strict):
    """How hard a row the database refuses is retried before it is dead-lettered."""

    write_retries: int = Field(
        3, ge=0, le=10, description="tries after the first (0.1 s, 0.2 s, 0.4 s ... apart) before a dead letter"
    )
    dead_letters_keep: int = Field(100_000, ge=100, le=100_000_000, description="newest dead letters kept")


class FleetMetricsConfig(_Strict):
    """Prometheus ``/metrics`` and ``/healthz`` of this instance (edge_fleet_*)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(9110, ge=0, le=65535, description="0: any free port")


class FleetCounts(_Strict):
    """``counts:``: how long the count time series is kept (docs/fleet.md, counts)."""

    raw_days: float = Field(400.0, gt=0, le=36_500, description="days of 15-minute and zone rows kept")
    hourly_days: float = Field(1830.0, gt=0, le=36_500, description="days of hourly rows kept (charts)")
    prune_every_s: float = Field(3600.0, ge=10, le=86_400, description="seconds between retention runs")


class FleetConfig(_Strict):
    """The whole ``edge fleet`` config."""

    database: str = Field(
        "sqlite:///edge-fleet.sqlite3", description="SQLAlchemy URL: sqlite:///F or postgresql+psycopg://"
    )
    store_events: bool = Field(True, description="store raw events (a rules-only instance may turn it off)")
    mqtt: FleetMqtt = Field(default_factory=FleetMqtt)
    rules: FleetRules = Field(default_factory=FleetRules)  # type: ignore[arg-type]
    web: FleetWeb = Field(default_factory=FleetWeb)
    commands: FleetCommands = Field(default_factory=FleetCommands)
    ingest: FleetIngest = Field(default_factory=FleetIngest)
    metrics: FleetMetricsConfig = Field(default_factory=FleetMetricsConfig)
    counts: FleetCounts = Field(default_factory=FleetCounts)

    @model_validator(mode="after")
    def _check(self) -> FleetConfig:
        if self.rules.enabled and self.mqtt.share_group:
            raise ValueError(
                "rules need every event: run the rule engine in an instance without mqtt.share_group "
                "(workers with a share group only store)"
            )
        return self


def parse_fleet_config(data: object, source: str = "<fleet config>") -> FleetConfig:
    """Expand ``${VAR}`` in decoded data and validate it; ConfigError lists every problem by field."""
    return parse_model(data, FleetConfig, source)


def load_fleet_config(path: str | Path) -> FleetConfig:
    """Read a YAML file with the device config's hardened loader (duplicate keys, alias bombs and
    oversized files are errors), then expand ``${VAR}`` / ``${VAR:-default}`` in the parsed values
    (a secret's ``#``, ``:`` or newline stays part of the value) and validate."""
    return load_model(path, FleetConfig)
