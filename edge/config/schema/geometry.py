"""A camera's ``zones:`` and ``lines:``: named polygons and directed counting lines."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from edge.config.schema.base import Name, Point, Polygon, Strict, check_polygon


class ZoneConfig(Strict):
    """A named polygon; an object is in it when its box's bottom centre is inside."""

    coordinates: Polygon
    objects: list[str] = Field(default_factory=list, description="labels it applies to; empty = all")
    role: Name | None = Field(None, description="what the zone is for (e.g. entry, exit, parking); on zone events")

    _poly = field_validator("coordinates")(check_polygon)


class LineConfig(Strict):
    """A directed counting line: a track whose bottom centre crosses it makes a ``line`` event,
    ``dir: in`` when it moves the ``in`` way (up/down/left/right on screen), else ``out``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    points: list[Point] = Field(description="two distinct normalised [x, y] end points")
    in_: Literal["up", "down", "left", "right"] = Field(alias="in", description="screen direction that counts as in")
    road: str | None = Field(None, description="road or gate the line is on (on line events)")
    role: Literal["entry", "exit", "both"] | None = Field(None, description="entry, exit or both (on line events)")

    @model_validator(mode="after")
    def _shape(self) -> LineConfig:
        if len(self.points) != 2:
            raise ValueError("a line needs exactly 2 points")
        (x0, y0), (x1, y1) = self.points
        length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
        if length < 1e-3:
            raise ValueError("the 2 points of a line must be distinct")
        dx, dy = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}[self.in_]
        # crossing "in" means moving along the line's normal; a line parallel to it has no in side
        if abs((x1 - x0) * dy - (y1 - y0) * dx) / length < 0.2:
            raise ValueError(f"'in: {self.in_}' runs along the line; use a direction across it")
        return self
