"""Crossings batched per camera and minute: the ``crossings`` event of ``events.detail: crossings``.

One ``line`` event is ~360 bytes on the wire; a busy road has ~3,000 an hour, 160-210 MB a week.
A :class:`Batch` keeps the per-vehicle part of each crossing as one row of a table (``cols`` +
``rows``, column names sent with every event so a consumer reads them by name and new columns
can be added) and becomes one ``crossings`` event per camera and wall-clock minute: ~45 bytes a
crossing plus ~250 bytes a minute (docs/events.md).
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from edge.events.schema import Event, epoch, utc_iso

BATCH_S = 60.0  # one event per camera and wall-clock minute, unless counts.crossings_seconds says otherwise
# a fuller minute is cut into several events (a fleet takes events up to 64 KiB)
MAX_ROWS = 600
MAX_BYTES = 48_000  # of the rows' attrs as JSON (more than the rows take: the keys are in cols once)
_NS = uuid.UUID("c3b1e0a4-58f2-5d6e-8a0f-2f4b6c9d1e37")  # batch ids: uuid5 in this namespace
FIRST = ("t", "track", "label", "line", "dir")  # every row's first columns; then the attrs keys
ORDER = ("type", "type_confidence", "color", "color_confidence", "plate", "plate_hash", "road", "role")


def batch_id(device: str, camera: str, start: float) -> str:
    """The id of a camera's batch starting at ``start``: the same on every (re)publication."""
    return uuid.uuid5(_NS, f"{device}/{camera}/{start:.3f}").hex


def batch_start(t: float, seconds: float = BATCH_S) -> float:
    """The start of the wall-clock batch of ``seconds`` (a divisor of an hour) holding epoch ``t``:
    the minute by default (time zones are whole minutes off UTC)."""
    return math.floor(t / seconds) * seconds


@dataclass
class Batch:
    """One camera's crossings in ``[start, end)``: one dict per crossing (``t`` = epoch s)."""

    start: float
    end: float
    crossings: list[dict[str, Any]] = field(default_factory=list)
    size: int = field(default=0, compare=False)  # bytes of the rows' attrs as JSON, roughly

    def __post_init__(self) -> None:
        self.size = sum(_size(row) for row in self.crossings)

    def add(self, event: Event) -> None:
        """Keep line event ``event`` as a row (``t`` before ``start``: it came after its minute closed)."""
        row: dict[str, Any] = {"t": epoch(event.ts), "track": event.track, "label": event.label}
        row.update(event.attrs)
        self.crossings.append(row)
        self.size += _size(row)

    def full(self) -> bool:
        """As many rows (or bytes) as one event carries."""
        return len(self.crossings) >= MAX_ROWS or self.size >= MAX_BYTES

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (persisted)."""
        return {"start": self.start, "end": self.end, "crossings": self.crossings}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Batch:
        """Inverse of :meth:`to_dict`."""
        return cls(float(d["start"]), float(d["end"]), list(d.get("crossings", [])))

    def event(self, device: str, camera: str) -> Event:
        """The ``crossings`` event (``ts`` = the batch's end; ``from`` + ``t`` = each crossing's time)."""
        keys = {k for row in self.crossings for k in row} - set(FIRST)
        cols = [*FIRST, *(k for k in ORDER if k in keys), *sorted(keys - set(ORDER))]
        rows = [[_cell(c, row, self.start) for c in cols] for row in self.crossings]
        attrs = {"from": utc_iso(self.start), "period": _num(self.end - self.start), "cols": cols, "rows": rows}
        return Event(
            id=batch_id(device, camera, self.start), device="", camera=camera, type="crossings",
            ts=utc_iso(self.end), attrs=attrs,
        )  # fmt: skip


def _size(row: dict[str, Any]) -> int:
    return len(json.dumps(row, separators=(",", ":"), default=str))


def _cell(col: str, row: dict[str, Any], start: float) -> Any:
    if col == "t":
        return round(row["t"] - start, 3)
    return row.get(col)


def _num(x: float) -> float | int:
    return int(round(x)) if abs(x - round(x)) < 1e-6 else round(x, 3)


def line_events(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``line`` events a decoded ``crossings`` event stands for (for consumers that want them
    one by one, e.g. the fleet's rule engine); each id is derived from the batch id and the row,
    so a redelivered batch gives the same ids. ``batch``'s attrs must have passed
    :class:`edge.events.payloads.CrossingsAttrs`."""
    a = batch["attrs"]
    start, cols = epoch(a["from"]), a["cols"]
    out = []
    for i, values in enumerate(a["rows"]):
        row = {c: v for c, v in zip(cols, values, strict=True) if v is not None}
        attrs = {k: v for k, v in row.items() if k not in ("t", "track", "label")}
        e: dict[str, Any] = {
            "v": batch.get("v", 2), "id": uuid.uuid5(_NS, f"{batch['id']}/{i}").hex, "device": batch["device"],
            "camera": batch["camera"], "type": "line", "ts": utc_iso(start + float(row.get("t", 0.0))),
            "seq": batch.get("seq", 0), "attrs": attrs,
        }  # fmt: skip
        for k in ("track", "label"):
            if k in row:
                e[k] = row[k]
        out.append(e)
    return out
