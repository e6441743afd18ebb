"""The shipped taxi-rank example (deploy/edge.example.yaml) with simulated time: one after-hours
truck that leaves by a road it may not take gives one visit with every column an operator's
table shows, and exactly one After-Hours and one Road anomaly; and its state rule names a state
its classifier really reports, so it fires."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.clock import ManualClock
from edge.config import ModelsConfig, load_config
from edge.events.schema import Event, epoch
from edge.replay import replay
from edge.rules import RuleEngine
from tests.test_rules_support import at, line, of, plate

ROOT = Path(__file__).resolve().parent.parent


def test_example_rank_after_hours_wrong_road_visit(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RANK_CAM_PASSWORD", "x")
    cfg = load_config(ROOT / "deploy" / "edge.example.yaml")
    engine = RuleEngine(cfg.rules, store_path=None, clock=ManualClock())
    t_in, t_out = at("2026-11-23 19:07"), at("2026-11-23 19:31")  # a Monday; the rank closes at 19:00
    out = []
    out += engine.process(line(t_in, "in", role="entry", road="Bypass Street", camera="rank-entry", type="truck"))
    out += engine.process(plate(t_in + 2, "CF207358", camera="rank-entry", list="watch"))
    out += engine.process(
        line(
            t_out, "out", role="exit", road="Station Road", camera="rank-exit", track=7, type="truck", plate="CF207358"
        )
    )
    ended = of(out, "visit", "end")
    assert len(ended) == 1
    v = ended[0].attrs
    assert (v["entry_camera"], v["road_in"], v["exit_camera"], v["road_out"]) == (
        "rank-entry",
        "Bypass Street",
        "rank-exit",
        "Station Road",
    )
    assert v["type"] == "truck" and v["plate"] == "CF207358" and v["status"] == "closed"
    assert v["time_in"] < v["time_out"] and abs(v["duration"] - (t_out - t_in)) < 1
    raised = {e.attrs["rule"]: e for e in of(out, "anomaly", "start")}
    assert sorted(raised) == ["after-hours", "road", "watch"], sorted(raised)
    assert "19:07" in raised["after-hours"].attrs["reason"] and "Bypass Street" in raised["after-hours"].attrs["reason"]
    assert "Station Road" in raised["road"].attrs["reason"]
    counts = engine.open_counts()
    assert counts["visits"] == 0 and sum(counts["anomalies"].values()) == 3


def test_example_state_rule_fires_on_what_its_classifier_reports(
    monkeypatch: pytest.MonkeyPatch, model_env: Path, car_video: Path
) -> None:
    """Issue 20: the example's ``state_held`` rule named ``no_taxi``, a class the ImageNet model
    does not have. Now: the exit camera, as configured (its classifier, labels, rate), on the real
    lot video reports the state the rule names; that state held 20 minutes raises the anomaly."""
    monkeypatch.setenv("RANK_CAM_PASSWORD", "x")
    app = load_config(ROOT / "deploy" / "edge.example.yaml")
    rule = app.rules.rules["empty-rank"]
    assert rule.kind == "state_held" and rule.cameras == ["rank-exit"]
    cam = app.cameras["rank-exit"].model_copy(update={"plates": None})  # plates play no part here
    app = app.model_copy(update={"cameras": {"rank-exit": cam}, "models": ModelsConfig(cache_dir=model_env)})
    events: list[Event] = []
    replay(str(car_video), app, "rank-exit", on_event=events.append, show_progress=False, start_time=0.0)
    states = [e for e in events if e.type == "state" and e.phase == "start"]
    assert rule.label in {e.label for e in states}, [(e.label, e.ts) for e in states]
    began = next(e for e in states if e.label == rule.label)
    engine = RuleEngine(app.rules, store_path=None, clock=ManualClock())
    assert engine.process(began) == []
    since = epoch(began.start or began.ts)
    (a,) = of(engine.tick(since + rule.minutes * 60 + 1), "anomaly", "start")  # type: ignore[union-attr]
    assert a.camera == "rank-exit" and a.attrs["rule"] == "empty-rank"
    assert a.attrs["reason"] == "state none held for 20 min on rank-exit (limit 20 min)"
