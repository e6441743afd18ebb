"""Event schema: published JSON Schema, compactness, topics."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from edge.events.schema import SCHEMA_VERSION, Event, event_json_schema, event_json_schema_text, new_event_id
from edge.events.topics import Topics
from tests.conftest import ROOT
from tests.fixtures.mqtt import sample_event


def test_published_schema_matches_model() -> None:
    path = ROOT / "docs" / "event-schema.json"
    assert path.is_file(), "run: python -m edge.events.schema > docs/event-schema.json"
    assert json.loads(path.read_text()) == event_json_schema()
    assert path.read_text() == event_json_schema_text()


def test_typical_track_event_is_compact() -> None:
    ev = sample_event(seq=1_795_000_000_123)  # a large seq (boot-time style) must still fit
    data = ev.to_bytes()
    assert len(data) < 512, len(data)
    assert b" " not in data.replace(b"edge-1", b"")  # no whitespace in compact JSON
    back = json.loads(data)
    assert back["v"] == SCHEMA_VERSION and back["id"] == ev.id and back["box"] == [0.1235, 0.2346, 0.3457, 0.4568]
    assert back["score"] == 0.873


def test_empty_and_null_fields_are_omitted_and_round_trip() -> None:
    ev = Event(device="d", camera="c", type="state", ts="2026-01-01T00:00:00.000Z", attrs={"camera": "up"})
    js = json.loads(ev.to_json())
    assert "zones" not in js and "track" not in js and "phase" not in js
    assert Event.model_validate(js) == ev


def test_ids_are_unique_and_validated() -> None:
    assert len({new_event_id() for _ in range(1000)}) == 1000
    with pytest.raises(ValidationError):
        Event(id="not-hex", device="d", camera="c", type="track", ts="x")
    with pytest.raises(ValidationError):
        Event(device="d", camera="c", type="bogus", ts="x")  # type: ignore[arg-type]


def test_topics() -> None:
    t = Topics("edge", "dev1")
    assert t.event("cam1", "track") == "edge/dev1/cam1/events/track"
    assert t.status == "edge/dev1/status" and t.stats == "edge/dev1/stats"
    assert t.snapshot("cam1", "ab") == "edge/dev1/cam1/snapshot/ab"
    assert t.discovery("sensor", "x") == "homeassistant/sensor/x/config"
