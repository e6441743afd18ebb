"""``edge config check``: validate a file, optionally without the environment (CI)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edge.config.loader import read_config_file
from edge.config.parse import validate_data
from edge.config.schema.appliance import AppConfig


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
    cfg, data, unset = validate_data(read_config_file(p), str(p), None if no_env else os.environ, AppConfig)
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
