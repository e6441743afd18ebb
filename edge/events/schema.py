"""The event schema, defined once. Compact on purpose: a track event is ~250-400 bytes.

Field names are short because every byte is paid for on cellular links; the JSON Schema in
``docs/event-schema.json`` documents them (regenerate with ``python -m edge.events.schema``).
"""

from __future__ import annotations

import builtins
import itertools
import json
import uuid
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.events.payloads import PAYLOADS, Attrs, parse_attrs

A = TypeVar("A", bound=Attrs)

SCHEMA_VERSION = 2
SCHEMA_ID = "https://example.invalid/edge/event-schema.json"

# track/plate/state come from a camera's pipeline; line/zone are geometry on tracks; visit/anomaly
# come from the rule engine (which reads only events); screentime sums a frame classifier's states;
# count sums line/zone events per wall-clock interval, crossings batches line events per minute (edge.counts).
EventType = Literal["track", "plate", "anomaly", "state", "line", "zone", "visit", "screentime", "count", "crossings"]
EVENT_TYPES: tuple[str, ...] = (
    "track", "plate", "anomaly", "state", "line", "zone", "visit", "screentime", "count", "crossings",
)  # fmt: skip
Phase = Literal["start", "update", "end"]


def new_event_id() -> str:
    """A unique id for deduplication: 32 hex chars (uuid4)."""
    return uuid.uuid4().hex


def utc_iso(ts: float) -> str:
    """Epoch seconds -> ``2026-11-21T19:07:03.120Z``."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(ts: str) -> float:
    """``2026-11-21T19:07:03.120Z`` -> epoch seconds (the inverse of :func:`utc_iso`)."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class Event(BaseModel):
    """One event. ``seq`` increases per camera so consumers can spot gaps and order.

    ``seq`` (and ``device``) are stamped by :class:`edge.events.bus.EventBus` when the event
    is emitted, so producers may leave ``seq`` at 0.
    """

    model_config = ConfigDict(extra="forbid", title="Event")

    v: int = Field(SCHEMA_VERSION, description="schema version")
    id: str = Field(
        default_factory=new_event_id,
        pattern=r"^[0-9a-f]{32}$",
        description="unique id (uuid4 hex), stable across redeliveries: deduplicate on it",
    )
    device: str = Field(description="device id (config device_id)")
    camera: str = Field(description="camera name")
    type: EventType = Field(description="event type; also the last topic level")
    phase: Phase | None = Field(
        None,
        description="life cycle of what the event is about (track, zone stay, visit, anomaly): start, update, end",
    )
    ts: str = Field(description="UTC capture time of the frame the event is about (ISO 8601)")
    pos: float | None = Field(
        None, ge=0, description="position in the source video, seconds (files and replays; absent for live cameras)"
    )
    seq: int = Field(0, ge=0, description="per-camera sequence number; increases across restarts (gaps possible)")
    track: int | None = Field(None, description="track id, unique per camera run")
    label: str | None = Field(None, description="object label, e.g. car")
    score: float | None = Field(None, ge=0, le=1, description="confidence, 3 decimals")
    box: list[float] | None = Field(
        None, min_length=4, max_length=4, description="normalised [x0, y0, x1, y1], 4 decimals"
    )
    zones: list[str] = Field(default_factory=list, description="zones the object is in (omitted if none)")
    start: str | None = Field(None, description="UTC time the track started")
    attrs: dict[str, Any] = Field(
        default_factory=dict, description="type/colour/plate/... per event type (omitted if empty)"
    )

    # Rounding keeps payloads small and stable; 1e-4 of a 4K frame is < 1 pixel.
    @field_validator("score")
    @classmethod
    def _round_score(cls, v: float | None) -> float | None:
        return None if v is None else round(float(v), 3)

    @field_validator("box")
    @classmethod
    def _round_box(cls, v: list[float] | None) -> list[float] | None:
        return None if v is None else [round(float(x), 4) for x in v]

    def attrs_as(self, model: builtins.type[A]) -> A:  # builtins: ``type`` is a field here
        """``attrs`` read as the typed ``model`` (e.g. :class:`edge.events.payloads.ZoneAttrs`);
        :class:`edge.events.payloads.BadAttrs` names the field when they do not fit."""
        return parse_attrs(self.type, self.attrs, model)

    def to_json(self) -> str:
        """Compact JSON (no spaces; null fields and empty ``zones``/``attrs`` left out)."""
        exclude = {k for k in ("zones", "attrs") if not getattr(self, k)}
        return self.model_dump_json(exclude_none=True, exclude=exclude or None)

    def to_bytes(self) -> bytes:
        """UTF-8 :meth:`to_json`, the MQTT payload."""
        return self.to_json().encode("utf-8")


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema published in ``docs/event-schema.json``."""
    schema = Event.model_json_schema(mode="serialization")
    # each type's attrs model (edge.events.payloads), applied by the event's type
    defs = schema.setdefault("$defs", {})
    cases = []
    for kind, model in PAYLOADS.items():
        sub = model.model_json_schema(mode="serialization", ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        defs[model.__name__] = sub
        cases.append(
            {
                "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
                "then": {"properties": {"attrs": {"$ref": f"#/$defs/{model.__name__}"}}},
            }
        )
    schema["allOf"] = cases
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "description": f"Edge appliance event, schema version {SCHEMA_VERSION}. "
        "Compact JSON: null fields and empty zones/attrs are omitted.",
    }


def event_json_schema_text() -> str:
    """:func:`event_json_schema` as the exact text of ``docs/event-schema.json``."""
    return json.dumps(event_json_schema(), indent=2, sort_keys=True) + "\n"


class Sequencer:
    """In-memory per-camera sequence numbers (thread-safe through itertools.count's atomic next).

    For numbers that survive restarts use :class:`edge.events.sequence.PersistentSequencer`.
    """

    def __init__(self, start: int = 0) -> None:
        self._counters: dict[str, itertools.count[int]] = {}
        self._start = start

    def next(self, camera: str) -> int:
        """The next sequence number for ``camera``."""
        c = self._counters.get(camera)
        if c is None:
            c = self._counters.setdefault(camera, itertools.count(self._start))
        return next(c)

    def close(self) -> None:
        """Nothing to persist."""


if __name__ == "__main__":  # python -m edge.events.schema > docs/event-schema.json
    print(event_json_schema_text(), end="")
