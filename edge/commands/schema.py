"""The command JSON, validated by pydantic: one model per ``cmd``, unknown keys refused.

``{"id": "c1", "cmd": "ack"|"resolve", "anomaly": "<id>"}``
``{"id": "c2", "cmd": "feedback", "event": "<event id>", "field": "type"|"plate"|"color", "value": "van"}``
``{"id": "u1", "cmd": "update", ...}`` is routed to :mod:`edge.update` (Ed25519-signed, docs/fleet.md).
Every command may carry ``ts`` (epoch seconds, required when commands are signed) and ``sig``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

CommandId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
COMMANDS: tuple[str, ...] = ("ack", "resolve", "feedback")
FEEDBACK_FIELDS: tuple[str, ...] = ("type", "plate", "color")


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: CommandId = Field(description="caller's id, echoed in the reply; never reused when signing")
    ts: float | None = Field(None, ge=0, description="UTC epoch seconds the command was made")
    sig: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{64}$", description="hex HMAC-SHA256, see edge.commands.signing"
    )


class AnomalyCommand(_Base):
    """Acknowledge (``ack``) or close (``resolve``) an anomaly raised by the rule engine."""

    cmd: Literal["ack", "resolve"]
    anomaly: str = Field(min_length=1, max_length=64)
    by: str = Field("operator", min_length=1, max_length=64, description="who did it (recorded in the events)")


class FeedbackCommand(_Base):
    """Correct one attribute of an event (training data for the classifiers)."""

    cmd: Literal["feedback"]
    event: str = Field(pattern=r"^[0-9a-f]{32}$", description="id of the event being corrected")
    field: Literal["type", "plate", "color"]
    value: str = Field(min_length=1, max_length=64)
    note: str | None = Field(None, max_length=500)


Command = Annotated[AnomalyCommand | FeedbackCommand, Field(discriminator="cmd")]
_ADAPTER: TypeAdapter[AnomalyCommand | FeedbackCommand] = TypeAdapter(Command)


def parse_command(data: dict[str, Any]) -> AnomalyCommand | FeedbackCommand:
    """Validate a decoded command whose ``cmd`` is known. Raises ValueError naming the field."""
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as err:
        raise ValueError(describe_error(err)) from None


def describe_error(err: ValidationError) -> str:
    """``field: message`` for each problem, without echoing the input (may be huge or secret)."""
    parts = []
    for e in err.errors(include_input=False, include_url=False):
        loc = [str(x) for x in e["loc"] if x not in COMMANDS]  # drop the union tag from the path
        parts.append(f"{'.'.join(loc) or 'command'}: {e['msg']}")
    return "; ".join(parts)


def short_repr(value: Any) -> str:
    """A value for an error message or log line, cut short (it came from outside)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
