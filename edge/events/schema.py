"""The event schema, defined once. Compact on purpose: a track event is ~250-400 bytes.

Field names are short because every byte is paid for on cellular links; the JSON Schema in
``docs/event-schema.json`` documents them.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

EventType = Literal["track", "plate", "anomaly", "state"]
Phase = Literal["start", "update", "end"]


def new_event_id() -> str:
    """A unique id for deduplication: 32 hex chars (uuid4)."""
    return uuid.uuid4().hex


def utc_iso(ts: float) -> str:
    """Epoch seconds -> ``2026-11-21T19:07:03.120Z``."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Event(BaseModel):
    """One event. ``seq`` increases per camera so consumers can spot gaps and order."""

    model_config = ConfigDict(extra="forbid")

    v: int = Field(SCHEMA_VERSION, description="schema version")
    id: str = Field(default_factory=new_event_id, description="unique id, stable across redeliveries")
    device: str
    camera: str
    type: EventType
    phase: Phase | None = None
    ts: str = Field(description="UTC capture time of the frame the event is about (ISO 8601)")
    seq: int = Field(ge=0, description="per-camera sequence number")
    track: int | None = Field(None, description="track id, unique per camera run")
    label: str | None = None
    score: float | None = None
    box: list[float] | None = Field(None, description="normalised [x0, y0, x1, y1]")
    zones: list[str] = Field(default_factory=list)
    start: str | None = Field(None, description="UTC time the track started")
    attrs: dict[str, Any] = Field(default_factory=dict, description="type/colour/plate/... per event type")

    def to_json(self) -> str:
        """Compact JSON (no spaces, empty and null fields left out)."""
        return self.model_dump_json(exclude_none=True, exclude_defaults=False, by_alias=True)


class Sequencer:
    """Per-camera sequence numbers (thread-safe through itertools.count's atomic next)."""

    def __init__(self, start: int = 0) -> None:
        self._counters: dict[str, itertools.count[int]] = {}
        self._start = start

    def next(self, camera: str) -> int:
        """The next sequence number for ``camera``."""
        c = self._counters.get(camera)
        if c is None:
            c = self._counters.setdefault(camera, itertools.count(self._start))
        return next(c)


def boot_sequence_start() -> int:
    """Sequence numbers start from the boot time in ms so they keep increasing across restarts."""
    return int(time.time() * 1000) if os.environ.get("EDGE_SEQ_FROM_ZERO") is None else 0
