"""Rule configuration: validated up front, errors name the rule and the field.

``rules:`` in the main config is either a list of rules or a mapping with ``timezone``,
``visits``, ``rules`` and an optional ``rules_file`` whose rules are appended. Rules are a
pydantic discriminated union on ``kind``; the list is keyed by rule id during validation so
an error reads ``rules.rules.after-hours.after_hours.open: ...``.
"""

from __future__ import annotations

from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.rules.regex_guard import check_pattern
from edge.rules.schedule import WeeklySchedule, parse_days, parse_hours, zone

RuleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Severity = Literal["info", "warning", "critical"]


# Visits and stays can last days, but an unbounded number is a typo that breaks time maths.
MAX_RULE_SECONDS = 30 * 86_400.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _check_tz(v: str | None) -> str | None:
    if v is not None:
        zone(v)
    return v


class ScheduleConfig(_Strict):
    """Weekly hours (``mon-fri: "07:00-19:00"``) plus exception dates."""

    model_config = ConfigDict(extra="allow", frozen=True)  # the weekday keys themselves

    exceptions: dict[date, str] = Field(default_factory=dict, description="date -> hours or 'closed'")

    @model_validator(mode="after")
    def _check(self) -> ScheduleConfig:
        for k, v in (self.model_extra or {}).items():
            parse_days(k)
            parse_hours(str(v))
        for v in self.exceptions.values():
            parse_hours(v)
        return self

    def weekly(self) -> dict[str, str]:
        """The weekday keys."""
        return {k: str(v) for k, v in (self.model_extra or {}).items()}

    def build(self, tz: str) -> WeeklySchedule:
        """The parsed schedule in zone ``tz``."""
        return WeeklySchedule.parse(self.weekly(), self.exceptions, tz)


class RuleBase(_Strict):
    """Fields every rule has."""

    id: RuleId
    severity: Severity = "warning"
    enabled: bool = True
    cameras: list[str] = Field(default_factory=list, description="only events of these cameras (empty: all)")
    resolve_after: float | None = Field(
        None, gt=0, le=MAX_RULE_SECONDS, description="auto-resolve this many seconds after the last update (one-off)"
    )
    cooldown: float = Field(
        0.0, ge=0, le=MAX_RULE_SECONDS, description="after raising, s before the same subject may raise again"
    )
    timezone: str | None = Field(None, description="IANA zone for times of day; default rules.timezone")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return _check_tz(v)

    def applies_to(self, camera: str) -> bool:
        """Camera filter."""
        return not self.cameras or camera in self.cameras


class AfterHoursRule(RuleBase):
    """An entry (or a new track) outside opening hours."""

    kind: Literal["after_hours"]
    open: ScheduleConfig = Field(description="opening hours, e.g. mon-fri: '07:00-19:00'")
    on: Literal["entry", "track"] = Field("entry", description="entry crossings (visits) or any new track")


Pair = tuple[str, str]


class WrongRoadRule(RuleBase):
    """A visit that left by a road not allowed for the road it came in by."""

    kind: Literal["wrong_road"]
    allowed: dict[str, list[str]] = Field(description="road in -> roads out; or [in, out] / 'in->out' pairs")
    by_type: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict, description="vehicle type -> its own allowed pairs, in the same forms"
    )

    @field_validator("allowed", mode="before")
    @classmethod
    def _allowed(cls, v: Any) -> Any:
        return _pairs(v)

    @field_validator("by_type", mode="before")
    @classmethod
    def _by_type(cls, v: Any) -> Any:
        return {k: _pairs(x) for k, x in v.items()} if isinstance(v, dict) else v


def _pairs(v: Any) -> Any:
    """``[[A, A], [A, B]]`` or ``["A->A", "A->B"]`` -> ``{A: [A, B]}``; a mapping passes through."""
    if not isinstance(v, list):
        return v
    out: dict[str, list[str]] = {}
    for p in v:
        pair = [x.strip() for x in p.split("->")] if isinstance(p, str) else p
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError(f"bad road pair {p!r}: use [in, out] or 'in->out'")
        out.setdefault(str(pair[0]), []).append(str(pair[1]))
    return out


class OverstayRule(RuleBase):
    """A visit open longer than ``max_seconds``; resolves when the visit ends."""

    kind: Literal["overstay"]
    max_seconds: float = Field(gt=0, le=MAX_RULE_SECONDS)
    types: list[str] = Field(default_factory=list, description="only these vehicle types (empty: all)")


class LoiteringRule(RuleBase):
    """An object in a zone longer than ``max_seconds``; resolves when it leaves."""

    kind: Literal["loitering"]
    max_seconds: float = Field(gt=0, le=MAX_RULE_SECONDS)
    zones: list[str] = Field(default_factory=list, description="empty: all zones")
    types: list[str] = Field(default_factory=list)


class OccupancyRule(RuleBase):
    """More than ``capacity`` objects in a zone; resolves when it drops back."""

    kind: Literal["occupancy"]
    zone: str
    capacity: int = Field(ge=0, le=100_000)


class TypeNotAllowedRule(RuleBase):
    """A vehicle type that may not enter a zone (zone events) or the site (visits)."""

    kind: Literal["type_not_allowed"]
    types: list[str] = Field(min_length=1, description="types not allowed")
    zones: list[str] = Field(default_factory=list, description="zones checked (empty: all)")
    where: Literal["zone", "visit", "both"] = "both"


class PlateWatchRule(RuleBase):
    """A plate event whose ``attrs.list`` is ``watch``: one anomaly per plate while open."""

    kind: Literal["plate_watch"]
    severity: Severity = "critical"
    list: str = Field("watch", description="the list name that raises")


class StateHeldRule(RuleBase):
    """A frame-classifier state (``none``: no class in view) held longer than ``minutes``; resolves when it ends."""

    kind: Literal["state_held"]
    label: str
    minutes: float = Field(gt=0, le=MAX_RULE_SECONDS / 60)


class NoExitByRule(RuleBase):
    """A visit still open at a local deadline (``18:00``); resolves when the visit ends."""

    kind: Literal["no_exit_by"]
    deadline: time
    days: str = Field("daily", description="days the deadline applies, e.g. mon-fri")

    @field_validator("deadline", mode="before")
    @classmethod
    def _hhmm(cls, v: Any) -> Any:
        if isinstance(v, int):  # YAML 1.1 reads 18:00 unquoted as sexagesimal 1080
            return time(v // 60 % 24, v % 60)
        return v

    @field_validator("days")
    @classmethod
    def _days(cls, v: str) -> str:
        parse_days(v)
        return v


Op = Literal["eq", "ne", "in", "not_in", "gt", "ge", "lt", "le", "regex", "exists"]


class Condition(_Strict):
    """``all``/``any``/``not`` over tests ``{field: attrs.type, op: eq, value: truck}``."""

    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(None, alias="not")
    field: str | None = Field(None, description="dotted path into the event, e.g. attrs.type")
    op: Op = "eq"
    value: Any = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        forms = [x for x in (self.all, self.any, self.not_, self.field) if x is not None]
        if len(forms) != 1:
            raise ValueError("a condition is exactly one of all, any, not or a test with field")
        if self.field is not None:
            if self.op in ("in", "not_in") and not isinstance(self.value, list):
                raise ValueError(f"op {self.op} needs a list value")
            if self.op == "regex":
                check_pattern(str(self.value))  # invalid, or one that can backtrack for minutes
        return self


class ConditionRule(RuleBase):
    """A generic rule over event fields."""

    kind: Literal["condition"]
    when: Condition
    event_types: list[str] = Field(default_factory=list, description="event types checked (empty: all but anomaly)")
    phases: list[str] = Field(default_factory=list, description="phases checked (empty: all)")
    schedule: ScheduleConfig | None = Field(None, description="active only inside these hours")
    subject: Literal["track", "visit", "camera", "plate", "event"] = Field(
        "track", description="what one anomaly is about: repeats for the same subject update it"
    )
    reason: str | None = Field(None, description="text for the anomaly; {field} placeholders from the event")


Rule = Annotated[
    AfterHoursRule
    | WrongRoadRule
    | OverstayRule
    | LoiteringRule
    | OccupancyRule
    | TypeNotAllowedRule
    | PlateWatchRule
    | StateHeldRule
    | NoExitByRule
    | ConditionRule,
    Field(discriminator="kind"),
]


class VisitsConfig(_Strict):
    """How entry and exit crossings pair up into visits."""

    enabled: bool = True
    plate_max_distance: int = Field(1, ge=0, le=5, description="Levenshtein distance for a plate match")
    match_window: float = Field(
        86400.0, gt=0, le=MAX_RULE_SECONDS, description="an exit matches entries at most this many s old"
    )
    unresolved_after: float = Field(
        43200.0, gt=0, le=MAX_RULE_SECONDS, description="an open visit ends as unresolved after this many s"
    )
    merge_window: float = Field(
        60.0,
        ge=0,
        le=86_400,
        description="an entry with the plate of a visit opened this recently joins it (two entry cameras)",
    )


class RulesConfig(_Strict):
    """The ``rules:`` section."""

    enabled: bool = True
    timezone: str = Field("UTC", description="default IANA zone for schedules and deadlines")
    visits: VisitsConfig = Field(default_factory=VisitsConfig)
    rules: dict[RuleId, Rule] = Field(default_factory=dict, description="a list of rules (keyed by id when validated)")
    rules_file: Path | None = Field(None, description="YAML file whose rules (list or {rules: [...]}) are appended")
    screentime_period: float = Field(
        3600.0, gt=0, le=7 * 86400, description="seconds per screentime event of a frame classifier (clock-aligned)"
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        _check_tz(v)
        return v

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, list):
            data = {"rules": data}
        if not isinstance(data, dict):
            return data
        data = dict(data)
        rules = data.get("rules") or []
        if isinstance(rules, dict):  # already keyed (model_dump round trip)
            rules = [{**r, "id": k} if isinstance(r, dict) else r for k, r in rules.items()]
        if not isinstance(rules, list):  # a string is no list of rules (list() made a rule per character)
            return data
        rules = list(rules)
        if data.get("rules_file"):
            rules += _load_rules_file(Path(data["rules_file"]))
        data["rules"] = _keyed(rules)
        return data

    def active(self) -> list[Any]:
        """Enabled rules in file order."""
        return [r for r in self.rules.values() if r.enabled]

    def tz_for(self, rule: RuleBase) -> str:
        """The rule's zone or the default."""
        return rule.timezone or self.timezone


def _load_rules_file(path: Path) -> list[Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"rules_file {path}: {err}") from None
    if isinstance(data, dict):
        data = data.get("rules", [])
    if not isinstance(data, list):
        raise ValueError(f"rules_file {path}: expected a list of rules or a mapping with 'rules'")
    return data


def _keyed(rules: list[Any]) -> dict[str, Any]:
    """List -> {id: rule} so validation errors name the rule id (``rules.<id>.<kind>.<field>``)."""
    out: dict[str, Any] = {}
    for i, r in enumerate(rules):
        rid = r.get("id") if isinstance(r, dict) else None
        key = str(rid) if rid is not None else f"#{i}"  # no id: the id error names the position
        if key in out:
            raise ValueError(f"duplicate rule id {key!r}")
        out[key] = r
    return out
