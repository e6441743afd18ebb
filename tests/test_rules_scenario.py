"""A simulated day at a two-camera site, ticked every 10 s like a live appliance: the full
stream of visit and anomaly events is exactly what the rules promise, nothing more."""

from __future__ import annotations

import re
from pathlib import Path

from edge.events.schema import Event
from edge.rules import RulesConfig
from edge.rules.kinds import KINDS
from tests.test_rules_support import at, engine, line, plate

RULES = [
    {"id": "after-hours", "kind": "after_hours", "open": {"mon-fri": "07:00-19:00"}},
    {"id": "roads", "kind": "wrong_road", "allowed": ["A->A", "A->B"], "by_type": {"truck": ["A->A"]}},
    {"id": "overstay", "kind": "overstay", "max_seconds": 7200, "severity": "critical"},
    {"id": "home-time", "kind": "no_exit_by", "deadline": "18:00", "days": "mon-fri"},
    {"id": "watch", "kind": "plate_watch"},
]


def test_a_day_at_the_gate(tmp_path: Path) -> None:
    eng = engine(RULES, store=tmp_path / "rules.sqlite3", timezone="Africa/Johannesburg",
                 visits={"unresolved_after": 8 * 3600})  # fmt: skip
    script: dict[float, list[Event]] = {}

    def add(text: str, event_at: object) -> None:
        t = at(text)
        script.setdefault(t, []).append(event_at(t))  # type: ignore[operator]

    # 10:00 a car in by A, its plate read a second later, out by B on the back camera at 10:30
    add("2026-11-23 10:00", lambda t: line(t, "in", track=1, road="A", type="car"))
    add("2026-11-23 10:01", lambda t: plate(t, "CA100", track=1, type="car"))
    add("2026-11-23 10:30", lambda t: line(t, "out", role="exit", camera="back", track=1, road="B", plate="CA100"))
    # 11:00 a truck in by A, out by B at 11:20: trucks may only leave by A
    add("2026-11-23 11:00", lambda t: line(t, "in", track=2, road="A", type="truck", plate="ND200"))
    add("2026-11-23 11:20", lambda t: line(t, "out", role="exit", camera="back", track=2, road="B", plate="ND201"))
    # 12:00 a van that never leaves: overstay at 14:00, still there at 18:00, unresolved at 20:00
    add("2026-11-23 12:00", lambda t: line(t, "in", track=3, road="A", type="van", plate="GP300"))
    # 13:00 a watch-listed plate, read twice on the same track, then on the back camera
    add("2026-11-23 13:00", lambda t: plate(t, "WANTED1", track=4, list="watch"))
    add("2026-11-23 13:00", lambda t: plate(t, "WANTED1", track=4, list="watch", phase="update"))
    add("2026-11-23 13:05", lambda t: plate(t, "WANTED1", camera="back", track=9, list="watch"))
    # 19:07 a late arrival
    add("2026-11-23 19:07", lambda t: line(t, "in", track=5, road="Bypass Street", type="truck"))

    out: list[Event] = []
    t, end = at("2026-11-23 09:00"), at("2026-11-23 20:30")
    while t <= end:
        for e in script.get(t, []):
            out += eng.process(e)
        out += eng.tick(t)
        t += 10
    anomalies = [(e.attrs["rule"], e.phase, e.attrs["state"]) for e in out if e.type == "anomaly"]
    assert anomalies == [
        ("roads", "start", "raised"),
        ("watch", "start", "raised"),
        ("watch", "update", "updated"),  # a second camera's track; the re-read was not news
        ("overstay", "start", "raised"),
        ("home-time", "start", "raised"),
        ("after-hours", "start", "raised"),
        ("overstay", "end", "resolved"),  # the van's visit ended unresolved at 20:00
        ("home-time", "end", "resolved"),
    ]
    visits = [(e.attrs.get("plate"), e.phase, e.attrs["status"]) for e in out if e.type == "visit"]
    assert visits == [
        (None, "start", "open"), ("CA100", "update", "open"), ("CA100", "end", "closed"),
        ("ND200", "start", "open"), ("ND200", "end", "closed"),
        ("GP300", "start", "open"),
        (None, "start", "open"),
        ("GP300", "end", "unresolved"),
    ]  # fmt: skip
    reasons = {e.attrs["rule"]: e.attrs["reason"] for e in out if e.type == "anomaly" and e.phase == "start"}
    assert reasons["after-hours"] == (
        "truck entered via Bypass Street at 19:07, after hours (mon-fri 07:00-19:00 Africa/Johannesburg)"
    )
    assert reasons["overstay"] == "van GP300 on site for 120 min since 12:00 (limit 120 min)"
    assert reasons["roads"] == "truck ND200 entered via A and left via B; allowed from A for a truck: A"
    counts = eng.open_counts()
    assert counts["visits"] == 1 and counts["errors"] == {}
    assert counts["anomalies"] == {
        ("roads", "warning"): 1, ("watch", "critical"): 1, ("after-hours", "warning"): 1}  # fmt: skip
    assert max(len(e.to_bytes()) for e in out) < 1200  # compact enough for cellular links
    eng.close()


def test_every_rule_kind_is_documented_with_an_example_and_round_trips() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "rules.md").read_text()
    for kind in KINDS:
        assert f"**`{kind}`**" in doc, kind
        assert re.search(rf"kind: {kind}\b", doc), f"no example for {kind}"
    examples = [
        {"id": "c", "kind": "condition", "when": {"not": {"field": "camera", "op": "in", "value": ["x"]}},
         "schedule": {"daily": "06:00-22:00", "exceptions": {"2026-12-25": "closed"}}},
        {"id": "s", "kind": "state_held", "label": "no_taxi", "minutes": 1},
        {"id": "o", "kind": "occupancy", "zone": "dock", "capacity": 2},
        {"id": "l", "kind": "loitering", "max_seconds": 5},
        {"id": "t", "kind": "type_not_allowed", "types": ["truck"]},
        *RULES,
    ]  # fmt: skip
    cfg = RulesConfig.model_validate(examples)
    assert {r.kind for r in cfg.rules.values()} == set(KINDS)
    assert RulesConfig.model_validate(cfg.model_dump()) == cfg
