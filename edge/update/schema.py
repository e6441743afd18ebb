"""The ``update`` command JSON, validated by pydantic (unknown keys refused).

``{"id", "cmd": "update", "ts", "device", "kind": "config", "config": "<YAML text>", "version"?, "sig"}``
``{"id", "cmd": "update", "ts", "device", "kind": "model", "model": {"ref", "sha256"?, "field"?, "cameras"?},
"version"?, "sig"}``

Checked after the signature (a forged command never gets this far), so its errors may name
fields freely; values are never echoed (the config text may hold secrets).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.commands.schema import CommandId
from edge.config import Name, format_validation_error

MODEL_FIELDS: tuple[str, ...] = ("model", "attributes_model", "type_model", "classifier_model")
# the manifest task each detect field needs (what the pipeline loads it as)
FIELD_TASKS: dict[str, str] = {
    "model": "detect",
    "attributes_model": "attributes",
    "type_model": "detect",  # the COCO crop typer (docs/counting.md)
    "classifier_model": "classify",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Strict):
    """Which registry model to run, and where."""

    ref: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$", description="registry model name")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="sha256 of the model's entry file")
    field: Literal["model", "attributes_model", "classifier_model"] = "model"
    cameras: list[Name] | None = Field(None, min_length=1, max_length=1024, description="default: every camera")


class UpdateCommand(_Strict):
    """One signed update (the signature and ``ts`` are checked before this model)."""

    id: CommandId
    cmd: Literal["update"]
    ts: float
    device: str = Field(min_length=1, max_length=64)
    kind: Literal["config", "model"]
    config: str | None = Field(None, min_length=1, description="the new configuration as YAML text")
    model: ModelRef | None = None
    version: str | None = Field(None, min_length=1, max_length=64, description="label shown in the status")
    sig: str


def parse_update(data: dict[str, object]) -> UpdateCommand:
    """Validate a decoded update command. Raises ValueError: ``field: problem; ...`` (one line)."""
    try:
        cmd = UpdateCommand.model_validate(data)
    except ValidationError as err:
        raise ValueError("; ".join(format_validation_error(err))) from None
    if cmd.kind == "config" and (cmd.config is None or not cmd.config.strip()):
        raise ValueError("config: the new configuration as YAML text (kind config)")
    if cmd.kind == "model" and cmd.model is None:
        raise ValueError("model: {ref, sha256?, field?, cameras?} expected (kind model)")
    extra = "model" if cmd.kind == "config" else "config"
    if getattr(cmd, extra) is not None:
        raise ValueError(f"{extra}: not allowed with kind {cmd.kind}")
    return cmd
