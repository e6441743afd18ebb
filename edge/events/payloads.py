"""The ``attrs`` of each event type as a typed model: the contract producers write and readers use.

``Event.attrs`` stays a plain dict on the wire (the compact JSON is unchanged), but nothing reads
it by string key: a reader asks for the model (``ev.attrs_as(ZoneAttrs)``) and gets typed fields,
or :class:`BadAttrs` naming the event type and field. Readers ignore keys they do not know (a newer
device may add one); ``tests/test_event_payloads.py`` checks that producers write only known keys.
The JSON Schema (``docs/event-schema.json``) carries these models per event type.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Direction = Literal["in", "out"]
Role = Literal["entry", "exit", "both"]


class Attrs(BaseModel):
    """Base of every attrs model: immutable, unknown keys ignored when reading."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Described(Attrs):
    """What every event about one vehicle may carry: type, colour (``unknown`` when unsure, each
    with the share of the track's votes behind it) and the plate (or its hash, privacy mode)."""

    type: str | None = Field(None, description="vehicle type (car, van, truck, bus, motorbike, bicycle, unknown)")
    type_confidence: float | None = Field(None, ge=0, le=1, description="share of the track's type votes")
    color: str | None = Field(None, description="vehicle colour, or unknown")
    color_confidence: float | None = Field(None, ge=0, le=1, description="share of the track's colour votes")
    plate: str | None = Field(None, description="plate text (plates.publish: text)")
    plate_hash: str | None = Field(None, description="salted plate hash (plates.publish: hash)")

    def plate_key(self) -> str | None:
        """``plate``, else ``plate_hash``, else None: what identifies the vehicle across cameras."""
        return self.plate or self.plate_hash or None


class TrackAttrs(Described):
    """``track``: what is known of the vehicle so far; ``duration`` on ``end``."""

    duration: float | None = Field(None, ge=0, description="seconds from first to last sighting (end)")


class PlateAttrs(Described):
    """``plate``: a plate read (``type`` is the track's type when known)."""

    conf: float | None = Field(None, ge=0, le=1, description="reading confidence")
    reads: int | None = Field(None, ge=0, description="frames whose readings were voted")
    candidates: list[tuple[str, float]] | None = Field(None, description="[text, probability] alternatives")
    on_list: str | None = Field(None, alias="list", description="the plate list the plate is on (watch, allow, ...)")


class LineAttrs(Described):
    """``line``: a track crossed a counting line."""

    line: str = Field(description="line name")
    dir: Direction = Field(description="in or out, as the line's in-direction says")
    road: str | None = Field(None, description="the road the line is on")
    role: Role | None = Field(None, description="entry / exit / both, for visits")


class ZoneAttrs(Described):
    """``zone``: a track entered (start) or left (end) a zone."""

    zone: str = Field(description="zone name")
    role: Role | None = Field(None, description="entry / exit / both, for visits")
    occupancy: int | None = Field(None, ge=0, description="objects inside after the change")
    dwell: float | None = Field(None, ge=0, description="seconds inside (end)")


class StateAttrs(Attrs):
    """``state``: the whole-frame classifier's state; ``duration`` on end."""

    duration: float | None = Field(None, ge=0, description="seconds the state held (end)")


class ScreentimeAttrs(Attrs):
    """``screentime``: seconds per class of the frame classifier over a period."""

    period: float = Field(ge=0, description="period length, s")
    from_: str = Field(alias="from", description="period start (UTC ISO 8601)")
    to: str = Field(description="period end (UTC ISO 8601)")
    totals: dict[str, float] = Field(default_factory=dict, description="class -> seconds on screen")
    none: float = Field(0.0, ge=0, description="seconds with no class")


class ZoneCount(Attrs):
    """One zone's figures in a ``count`` interval."""

    peak: int = Field(ge=0, description="peak occupancy")
    mean: float = Field(ge=0, description="time-weighted mean occupancy over up")
    dwell: float = Field(ge=0, description="total dwell of stays that ended in the interval, s")
    n: int = Field(ge=0, description="entries")


class CountAttrs(Attrs):
    """``count``: crossings and zone figures per wall-clock interval (docs/events.md)."""

    from_: str = Field(alias="from", description="interval start (UTC ISO 8601)")
    period: float = Field(gt=0, description="interval length, s")
    up: float = Field(ge=0, description="seconds the device was counting in the interval")
    lines: dict[str, dict[Direction, dict[str, int]]] = Field(
        default_factory=dict, description="line -> direction -> type -> crossings"
    )
    zones: dict[str, ZoneCount] = Field(default_factory=dict, description="zone -> figures")


_Cell = Annotated[str, Field(max_length=200)] | int | float | bool | None
_Col = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]


class CrossingsAttrs(Attrs):
    """``crossings``: a camera's line events of one minute as a table (edge.counts.batch)."""

    from_: str = Field(alias="from", max_length=40, description="batch start (UTC ISO 8601)")
    period: float = Field(gt=0, le=3600, allow_inf_nan=False, description="batch length, s")
    cols: list[_Col] = Field(min_length=1, max_length=64, description="column names, t first")
    rows: list[list[_Cell]] = Field(max_length=6000, description="one crossing a row, one value per column")

    @model_validator(mode="after")
    def _rectangular(self) -> CrossingsAttrs:
        if self.cols[0] != "t" or len(set(self.cols)) != len(self.cols):
            raise ValueError("cols: t first, each name once")
        for i, row in enumerate(self.rows):
            if len(row) != len(self.cols):
                raise ValueError(f"rows.{i}: {len(row)} values for {len(self.cols)} cols")
            t = row[0]
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or abs(t) > 86_400:
                raise ValueError(f"rows.{i}.t: not seconds after from")
        return self


class VisitAttrs(Attrs):
    """``visit``: one vehicle's stay from entry to exit (rule engine)."""

    visit: str = Field(description="visit id")
    status: Literal["open", "closed", "unresolved"]
    entry_camera: str | None = None
    road_in: str | None = None
    time_in: str | None = Field(None, description="UTC ISO 8601")
    exit_camera: str | None = None
    road_out: str | None = None
    time_out: str | None = Field(None, description="UTC ISO 8601")
    type: str | None = None
    color: str | None = None
    plate: str | None = None
    plate_hash: str | None = None
    entry_track: int | None = None
    exit_track: int | None = None
    duration: float | None = Field(None, ge=0, description="s, once closed or unresolved")
    evidence: list[str] = Field(default_factory=list, description="ids of the events that made the visit")


class AnomalyAttrs(Attrs):
    """``anomaly``: a rule's finding and its life cycle (rule engine)."""

    anomaly: str = Field(description="anomaly id")
    rule: str
    kind: str
    severity: str
    state: Literal["raised", "updated", "acked", "resolved"]
    reason: str
    visit: str | None = None
    tracks: list[int] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list, description="ids of the events behind it")
    snapshot: str | None = None
    by: str | None = Field(None, description="auto or operator")
    subject: str | None = None
    count: int | None = Field(None, ge=1, description="times raised for the same subject")
    raised_at: str | None = Field(None, description="UTC ISO 8601")


# one model per event type (EVENT_TYPES in edge.events.schema)
PAYLOADS: dict[str, type[Attrs]] = {
    "track": TrackAttrs,
    "plate": PlateAttrs,
    "line": LineAttrs,
    "zone": ZoneAttrs,
    "state": StateAttrs,
    "screentime": ScreentimeAttrs,
    "count": CountAttrs,
    "crossings": CrossingsAttrs,
    "visit": VisitAttrs,
    "anomaly": AnomalyAttrs,
}

A = TypeVar("A", bound=Attrs)


class BadAttrs(ValueError):
    """An event's attrs do not fit its type's model; the message names the type and the field."""


def parse_attrs(event_type: str, attrs: dict[str, Any], model: type[A]) -> A:
    """``attrs`` of an event of ``event_type`` as ``model``, or :class:`BadAttrs`."""
    try:
        return model.model_validate(attrs)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "attrs"
        raise BadAttrs(f"{event_type} event: attrs.{where}: {err['msg']}") from None


def unknown_keys(event_type: str, attrs: dict[str, Any]) -> set[str]:
    """Keys of ``attrs`` that the model of ``event_type`` does not define (producers must write none)."""
    model = PAYLOADS[event_type]
    known = {f.alias or name for name, f in model.model_fields.items()}
    return set(attrs) - known
