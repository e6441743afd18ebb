"""Typed event payloads: each event type's ``attrs`` is a model that rules read by field, not by key.

The producers' side (every key a real replay writes is in its type's model) is checked on the
demo's events in tests/test_demo.py."""

from __future__ import annotations

import pytest

from edge.clock import ManualClock
from edge.events.payloads import PAYLOADS, BadAttrs, LineAttrs, ZoneAttrs, unknown_keys
from edge.events.schema import EVENT_TYPES, Event
from edge.rules import RuleEngine
from edge.rules.config import RulesConfig


def zone_event(**attrs: object) -> Event:
    return Event(device="d", camera="cam", type="zone", phase="start", ts="2026-12-07T12:00:00.000Z", track=1,
                 attrs=attrs)  # fmt: skip


def test_every_event_type_has_a_payload_model() -> None:
    assert set(PAYLOADS) == set(EVENT_TYPES)


def test_rules_read_typed_fields() -> None:
    attrs = {"line": "gate", "dir": "in", "type": "bus", "type_confidence": 0.8, "plate": "AB123"}
    ev = Event(device="d", camera="cam", type="line", ts="2026-12-07T12:00:00.000Z", attrs=attrs)
    line = ev.attrs_as(LineAttrs)
    assert (line.line, line.dir, line.type, line.type_confidence, line.plate_key()) == (
        "gate",
        "in",
        "bus",
        0.8,
        "AB123",
    )
    assert ev.attrs_as(LineAttrs).road is None  # optional fields absent: None, never a KeyError


def test_bad_attrs_name_the_event_type_and_field() -> None:
    with pytest.raises(BadAttrs, match=r"^zone event: attrs\.occupancy: "):
        zone_event(zone="bay", occupancy="lots").attrs_as(ZoneAttrs)
    with pytest.raises(BadAttrs, match=r"^zone event: attrs\.zone: Field required"):
        zone_event(occupancy=1).attrs_as(ZoneAttrs)


def test_a_malformed_event_is_counted_by_the_rule_not_raised() -> None:
    """The occupancy rule on a zone event whose occupancy is not a number: the event is skipped and
    counted as that rule's error; the next good event still raises the anomaly."""
    cfg = RulesConfig.model_validate({"rules": [{"id": "full", "kind": "occupancy", "zone": "bay", "capacity": 1}]})
    engine = RuleEngine(cfg, store_path=None, clock=ManualClock())
    assert engine.process(zone_event(zone="bay", occupancy="lots")) == []
    assert engine.errors["full"] == 1  # (the visit book skips it too)
    out = engine.process(zone_event(zone="bay", occupancy=2))
    assert [e.attrs["state"] for e in out if e.type == "anomaly"] == ["raised"]


def test_unknown_keys_are_reported_by_alias() -> None:
    assert unknown_keys("plate", {"plate": "X", "list": "watch", "conf": 0.9}) == set()
    assert unknown_keys("count", {"from": "2026-12-07T12:00:00.000Z", "period": 900, "up": 900, "extra": 1}) == {
        "extra"
    }
