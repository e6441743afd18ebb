"""Anomaly lifecycle (raise, update, ack, resolve), reload, persistence, failing rules, conditions."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from edge.rules import RulesConfig
from tests.test_rules_support import at, engine, ev, line, of, plate

T = at("2026-11-23 10:00")
WATCH = {"id": "watch", "kind": "plate_watch"}


def test_ack_then_resolve_drops_the_open_count_and_resolving_twice_is_an_error() -> None:
    eng = engine([WATCH])
    (a,) = of(eng.process(plate(T, "CA999", list="watch")), "anomaly")
    aid = a.attrs["anomaly"]
    (acked,) = eng.ack(aid)
    assert (acked.phase, acked.attrs["state"], acked.attrs["by"]) == ("update", "acked", "operator")
    assert eng.ack(aid) == []  # acking twice changes nothing
    # a repeat after the ack updates the anomaly but it stays acked
    (u,) = of(eng.process(plate(T + 1, "CA999", list="watch", track=2)), "anomaly")
    assert u.attrs["state"] == "acked"
    assert eng.open_counts()["anomalies"][("watch", "critical")] == 1
    (end,) = eng.resolve(aid, by="alice")
    assert (end.phase, end.attrs["state"], end.attrs["by"]) == ("end", "resolved", "alice")
    assert eng.open_counts()["anomalies"] == {}
    with pytest.raises(ValueError, match="^already resolved$"):
        eng.resolve(aid)
    with pytest.raises(ValueError):
        eng.ack(aid)
    with pytest.raises(KeyError):
        eng.resolve("0" * 32)
    # the same plate seen again after resolution is a new situation
    (again,) = of(eng.process(plate(T + 100, "CA999", list="watch")), "anomaly")
    assert again.phase == "start" and again.attrs["anomaly"] != aid


def test_open_anomalies_and_resolved_ids_persist_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "rules.sqlite3"
    eng = engine([WATCH], store=db)
    a1 = of(eng.process(plate(T, "CA1", list="watch")), "anomaly")[0].attrs["anomaly"]
    a2 = of(eng.process(plate(T, "CA2", list="watch", track=2)), "anomaly")[0].attrs["anomaly"]
    eng.resolve(a2)
    eng.close()
    eng = engine([WATCH], store=db)
    assert eng.open_counts()["anomalies"] == {("watch", "critical"): 1}
    (u,) = of(eng.process(plate(T + 5, "CA1", list="watch", track=3)), "anomaly")
    assert u.phase == "update" and u.attrs["anomaly"] == a1  # the same situation after the restart
    with pytest.raises(ValueError):
        eng.resolve(a2)
    eng.close()


def test_reload_swaps_rules_and_keeps_open_visits_and_anomalies() -> None:
    eng = engine([WATCH])
    eng.process(line(T, "in", plate="CA5"))
    eng.process(plate(T, "CA9", list="watch", track=9))
    eng.reload(RulesConfig.model_validate({"rules": [{"id": "roads", "kind": "wrong_road", "allowed": {"A": ["A"]}}]}))
    counts = eng.open_counts()
    assert counts["visits"] == 1 and counts["anomalies"] == {("watch", "critical"): 1}
    assert eng.rule_severities() == [("roads", "warning")]
    (a,) = of(eng.process(line(T + 60, "out", road="B")), "anomaly")  # the new rule sees the old visit close
    assert a.attrs["rule"] == "roads"


def test_reload_keeps_running_timers_of_unchanged_rules() -> None:
    rule = {"id": "no-taxi", "kind": "state_held", "label": "no_taxi", "minutes": 1}
    eng = engine([rule])
    from tests.test_rules_support import state

    eng.process(state(T, "no_taxi", "start"))
    eng.reload(RulesConfig.model_validate([{**rule, "severity": "critical"}]))
    (a,) = of(eng.tick(T + 61), "anomaly")
    assert a.attrs["severity"] == "critical"


def test_a_failing_rule_is_counted_and_logged_and_never_stops_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bad = {"id": "bad", "kind": "condition", "when": {"field": "attrs.conf", "op": "regex", "value": "^9"}}
    eng = engine([bad, WATCH])
    with caplog.at_level(logging.ERROR, logger="edge.rules"):
        for i in range(5):  # conf is a number: the regex fails at match time
            out = eng.process(plate(T + i, f"CA{i}", list="watch", track=i))
            assert len(of(out, "anomaly", "start")) == 1
    assert eng.open_counts()["errors"] == {"bad": 5}
    assert len([r for r in caplog.records if "rule bad failed" in r.getMessage()]) == 1  # rate-limited


def test_condition_rule_with_all_any_not_cooldown_and_schedule() -> None:
    rule = {
        "id": "red-truck",
        "kind": "condition",
        "severity": "info",
        "event_types": ["track"],
        "phases": ["start"],
        "when": {"all": [
            {"field": "attrs.type", "op": "eq", "value": "truck"},
            {"any": [{"field": "attrs.color", "op": "in", "value": ["red", "orange"]},
                     {"field": "score", "op": "gt", "value": 0.95}]},
            {"not": {"field": "camera", "op": "eq", "value": "yard"}},
            {"field": "attrs.plate", "op": "regex", "value": "^CA"},
        ]},
        "schedule": {"daily": "06:00-22:00"},
        "subject": "camera",
        "cooldown": 600,
        "resolve_after": 60,
        "reason": "{attrs.color} truck {attrs.plate} on {camera}",
    }  # fmt: skip
    eng = engine([rule], timezone="Africa/Johannesburg")

    def truck(t: float, track: int, **kw: object):  # noqa: ANN202
        args = {"type": "truck", "color": "red", "plate": "CA77", **kw}
        return ev("track", t, track=track, phase="start", **args)

    assert of(eng.process(truck(T, 1, color="blue")), "anomaly") == []
    assert of(eng.process(truck(T, 2, camera="yard")), "anomaly") == []
    assert of(eng.process(truck(T, 3, plate="GP1")), "anomaly") == []
    assert of(eng.process(truck(at("2026-11-23 23:00"), 4)), "anomaly") == []  # outside the schedule
    (a,) = of(eng.process(truck(T, 5)), "anomaly")
    assert a.attrs["reason"] == "red truck CA77 on gate" and a.attrs["severity"] == "info"
    assert of(eng.process(truck(T + 10, 6)), "anomaly", "update")  # same subject (camera): an update
    assert of(eng.tick(T + 70), "anomaly", "end")  # resolve_after
    assert of(eng.process(truck(T + 100, 7)), "anomaly") == []  # cool-down since the raise at T
    assert of(eng.process(truck(T + 601, 8)), "anomaly", "start")


def test_condition_on_visit_events() -> None:
    rule = {"id": "long", "kind": "condition", "event_types": ["visit"], "phases": ["end"], "subject": "visit",
            "when": {"field": "attrs.duration", "op": "gt", "value": 3600}}  # fmt: skip
    eng = engine([rule])
    eng.process(line(T, "in"))
    (a,) = of(eng.process(line(T + 4000, "out")), "anomaly")
    assert a.attrs["visit"] and a.attrs["subject"] == f"visit:{a.attrs['visit']}"


def test_the_engine_is_safe_across_camera_threads() -> None:
    eng = engine([WATCH])
    errors: list[BaseException] = []

    def camera(name: str) -> None:
        try:
            for i in range(100):
                eng.process(line(T + i, "in", camera=name, track=i, plate=None))
                eng.process(line(T + i + 0.5, "out", camera=name, track=i, plate=None))
                eng.tick(T + i)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=camera, args=(f"cam{i}",)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == [] and eng.open_counts()["visits"] == 0
