"""``edge fleet`` configuration (YAML), validated by pydantic like the device config.

```yaml
database: postgresql+psycopg://fleet@db/fleet   # default sqlite:///edge-fleet.sqlite3
mqtt: {host: broker, port: 1883, share_group: fleet}   # $share/fleet/edge/+/+/events/#
rules: {enabled: true, rules: [...]}            # the device rule engine on the merged stream
web: {port: 8080, users: {alice: "scrypt$..."}}  # or auth_header: X-Remote-User
```
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from edge.errors import EdgeError
from edge.rules.config import RulesConfig

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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
    users: dict[str, str] = Field(default_factory=dict, description="name -> scrypt hash (edge.fleet.web.auth)")
    auth_header: str | None = Field(None, description="trust this header's user name (set by an upstream proxy)")
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    secure_cookie: bool = Field(False, description="mark the session cookie Secure (behind HTTPS)")


class FleetCommands(_Strict):
    """Commands the console sends to devices."""

    secret: SecretStr | None = Field(None, description="HMAC key (the devices' commands.secret)")
    reply_timeout: float = Field(10.0, gt=0, le=300)


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

    @model_validator(mode="after")
    def _check(self) -> FleetConfig:
        if self.rules.enabled and self.mqtt.share_group:
            raise ValueError(
                "rules need every event: run the rule engine in an instance without mqtt.share_group "
                "(workers with a share group only store)"
            )
        return self


def _expand(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        val = os.environ.get(m.group(1))
        if val is None:
            if m.group(2) is None:
                raise EdgeError(f"environment variable {m.group(1)} is not set")
            return m.group(2)
        return val

    return _ENV.sub(sub, text)


def parse_fleet_config(data: object, source: str = "<fleet config>") -> FleetConfig:
    """Validate a decoded config; EdgeError lists every problem."""
    try:
        return FleetConfig.model_validate(data or {})
    except ValidationError as err:
        lines = [f"  {'.'.join(str(x) for x in e['loc']) or '(top)'}: {e['msg']}" for e in err.errors()]
        raise EdgeError(f"{source}: {len(lines)} problem(s)\n" + "\n".join(lines)) from None


def load_fleet_config(path: str | Path) -> FleetConfig:
    """Read, expand ``${VAR}`` / ``${VAR:-default}`` and validate a YAML file."""
    p = Path(path)
    try:
        data = yaml.safe_load(_expand(p.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as err:
        raise EdgeError(f"{p}: {err}") from None
    return parse_fleet_config(data, str(p))
