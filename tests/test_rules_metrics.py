"""The rules collector on a real registry, checked by promtool; the engine behind the real EventBus."""

from __future__ import annotations

import subprocess
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from edge.clock import ManualClock
from edge.config import parse_config
from edge.events.bus import EventBus
from edge.events.schema import Event, Sequencer
from edge.events.sinks import Sink
from edge.rules import RuleEngine, build_processors
from edge.rules.metrics import RulesCollector
from tests.conftest import need_exe
from tests.test_rules_support import at, engine, line, plate

T = at("2026-11-23 22:00")
RULES = [
    {"id": "watch", "kind": "plate_watch"},
    {"id": "after-hours", "kind": "after_hours", "open": {"mon-fri": "07:00-19:00"}},
    {"id": "bad", "kind": "condition", "when": {"field": "attrs.conf", "op": "regex", "value": "x"}},
]


def scrape(eng: RuleEngine) -> str:
    reg = CollectorRegistry()
    reg.register(RulesCollector(eng))
    return generate_latest(reg).decode()


def test_collector_exposes_open_anomalies_visits_and_errors_and_passes_promtool() -> None:
    eng = engine(RULES)
    eng.process(line(T, "in"))
    eng.process(plate(T, "CA9", list="watch", track=2))
    text = scrape(eng)
    assert 'edge_anomalies_open{rule="after-hours",severity="warning"} 1.0' in text
    assert 'edge_anomalies_open{rule="watch",severity="critical"} 1.0' in text
    assert 'edge_anomalies_open{rule="bad",severity="warning"} 0.0' in text
    assert "edge_visits_open 1.0" in text
    assert 'edge_rule_errors_total{rule="bad"} 1.0' in text
    promtool = need_exe("promtool")
    res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    aid = eng.open_anomalies()[0]["anomaly"]
    eng.resolve(aid)
    assert "edge_anomalies_open{" in scrape(eng)


class ListSink(Sink):
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


def test_build_processors_stores_beside_the_outbox_and_runs_behind_the_bus(tmp_path: Path) -> None:
    app = parse_config({"cameras": {"gate": {"url": "clip.mp4"}}, "outbox": {"path": str(tmp_path / "ob.sqlite3")},
                        "rules": RULES[:2]})  # fmt: skip
    (eng,) = build_processors(app, ManualClock(T), None)
    assert isinstance(eng, RuleEngine) and eng.store.path == tmp_path / "edge-rules.sqlite3"
    sink = ListSink()
    bus = EventBus("edge-9", sink, Sequencer(), processors=[eng])
    bus.emit(line(T, "in", road="Bypass Street"))
    assert [(e.type, e.phase) for e in sink.events] == [("line", None), ("visit", "start"), ("anomaly", "start")]
    assert all(e.device == "edge-9" for e in sink.events) and [e.seq for e in sink.events] == [0, 1, 2]
    bus.tick(T + 1)
    eng.close()
    (other,) = build_processors(app, ManualClock(T), tmp_path / "state")
    assert other.store.path == tmp_path / "state" / "edge-rules.sqlite3" and other.open_counts()["visits"] == 0
    other.close()
    off = parse_config({"cameras": {"gate": {"url": "clip.mp4"}}, "rules": {"enabled": False}})
    assert build_processors(off, ManualClock(T), tmp_path) == []
