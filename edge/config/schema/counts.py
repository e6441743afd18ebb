"""``counts:``: per-interval line and zone counts."""

from __future__ import annotations

from pydantic import Field, field_validator

from edge.config.schema.base import Strict
from edge.rules.schedule import zone


def _dividing(v: float, whole: float, what: str, examples: str) -> float:
    """``v`` when it divides ``whole`` evenly (wall-clock aligned periods), else a ValueError."""
    if abs(whole / v - round(whole / v)) > 1e-9:
        raise ValueError(f"must divide {what} evenly, e.g. {examples}")
    return v


class CountsConfig(Strict):
    """``counts:``: per line and interval, crossings by direction and type, zone occupancy and dwell
    (``count`` events, docs/events.md)."""

    enabled: bool = True
    interval_minutes: float = Field(
        15.0, ge=0.25, le=1440, description="minutes per count event, a divisor of a day, wall-clock aligned"
    )
    timezone: str | None = Field(None, description="IANA zone the intervals align to; default rules.timezone")
    crossings_seconds: float = Field(
        60.0, ge=10, le=3600, description="seconds per crossings event (events.detail: crossings), a divisor of an hour"
    )

    @field_validator("interval_minutes")
    @classmethod
    def _divides_day(cls, v: float) -> float:
        return _dividing(v, 1440, "a day (1440 minutes)", "5, 15, 60")

    @field_validator("crossings_seconds")
    @classmethod
    def _divides_hour(cls, v: float) -> float:
        return _dividing(v, 3600, "an hour (3600 s)", "15, 60, 300")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None:
            zone(v)
        return v
