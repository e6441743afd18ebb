"""Loaded YAML data -> a validated config model: ``${VAR}`` expanded, every problem listed in
one ConfigError (``parse_config``, ``load_config`` and their generic ``parse_model``/``load_model``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from edge.config.loader import EnvExpander, read_config_file
from edge.config.messages import format_validation_error
from edge.config.schema.appliance import AppConfig
from edge.errors import ConfigError

_MAX_LISTED = 50  # problems printed; a broken generated file can have thousands


ModelT = TypeVar("ModelT", bound=BaseModel)


def validate_data(
    data: Any, source: str, env: Mapping[str, str] | None, model: type[ModelT]
) -> tuple[ModelT | None, Any, set[str]]:
    """Expand variables and validate as ``model``; ConfigError listing every problem. Returns
    (config, expanded data, names of unset variables); the config is None when ``env`` is None and
    only fields left as ``${VAR}`` failed."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    expander = EnvExpander(env)
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
    cfg, _, _ = validate_data(data, source, os.environ, model)
    assert cfg is not None  # with an environment every failure is a problem
    return cfg


def parse_config(data: Any, source: str = "<config>") -> AppConfig:
    """Validate already-loaded YAML data. Raises ConfigError listing every problem."""
    return parse_model(data, AppConfig, source)


def load_model(path: str | Path, model: type[ModelT]) -> ModelT:
    """Read a YAML file with :class:`ConfigLoader`, expand ``${VAR}`` after parsing and validate it
    as ``model``. Raises ConfigError naming the file and fields."""
    p = Path(path)
    return parse_model(read_config_file(p), model, str(p))


def load_config(path: str | Path) -> AppConfig:
    """Load and validate a YAML config file. Raises ConfigError naming the file and fields."""
    return load_model(path, AppConfig)


def config_for_video(url: str, **camera: Any) -> AppConfig:
    """A one-camera config with defaults, for ``edge replay`` and ``edge demo``."""
    return parse_config({"cameras": {"camera": {"url": url, **camera}}}, "<defaults>")
