"""What every config section is built from: the strict base model, bounded numbers, names,
normalised points and polygons, file paths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# Bounds for every number: anything past them is a typo, and unbounded values crash at run
# time (threading waits above threading.TIMEOUT_MAX, int(inf) in the MQTT backoff).
MAX_SECONDS = 86_400.0  # one day: the longest delay, timeout or interval that makes sense
MAX_COUNT = 100_000  # frames, hits, reads ...


def _plain_path(value: Path) -> Path:
    # A NUL byte passes validation but makes every open() fail at run time.
    if "\x00" in str(value):
        raise ValueError("a path must not contain a NUL character")
    return value


Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Point = tuple[Fraction, Fraction]
FilePath = Annotated[Path, AfterValidator(_plain_path)]


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, floats are finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def check_polygon(points: list[Point]) -> list[Point]:
    """``points`` if they make a polygon (3 or more), else ValueError."""
    if len(points) < 3:
        raise ValueError("a polygon needs at least 3 points")
    return points


Polygon = Annotated[list[Point], Field(description="normalised [x, y] points, >= 3")]
