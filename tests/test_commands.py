"""Command handling without a broker: validation, errors naming the field, signatures, replay,
overflow, and feedback into the store. (Over real MQTT: tests/test_commands_mqtt.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge.clock import ManualClock
from edge.commands import CommandHandler, sign
from edge.config import CommandsConfig
from edge.events.schema import Event
from edge.events.topics import Topics
from edge.feedback.store import FeedbackStore
from edge.rules import RuleEngine, RulesConfig
from tests.fixtures.mqtt import sample_event

NOW = 1_795_000_000.0
EID = b"0123456789abcdef0123456789abcdef"


WATCH = {"id": "watch", "kind": "plate_watch"}


def rule_engine(store: Path | None = None) -> RuleEngine:
    """The real rule engine with one rule: a plate on the watch list raises an anomaly."""
    return RuleEngine(RulesConfig.model_validate({"rules": [WATCH]}), store_path=store, clock=ManualClock(NOW))


def raise_anomaly(engine: RuleEngine) -> str:
    """Feed a watch-listed plate read; returns the id of the anomaly the engine opens."""
    out = engine.process(
        sample_event("cam1", 0, type="plate", phase="start", attrs={"plate": "CA999", "list": "watch"})
    )
    (anomaly,) = [e for e in out if e.type == "anomaly"]
    return str(anomaly.attrs["anomaly"])


class Bus:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> Event:
        self.events.append(event)
        return event


class Harness:
    def __init__(self, tmp_path: Path, **cfg: Any) -> None:
        self.replies: list[tuple[str, dict[str, Any]]] = []
        self.engine, self.bus = rule_engine(), Bus()
        self.aid = raise_anomaly(self.engine)
        self.store = FeedbackStore(tmp_path / "fb.sqlite3")
        self.now = NOW
        self.h = CommandHandler(
            CommandsConfig(**cfg),
            Topics("edge", "dev1"),
            lambda t, p: self.replies.append((t, json.loads(p))),
            self.store,
            engine=self.engine,
            bus=self.bus,
            clock=lambda: self.now,
        )

    def send(self, cmd: Any) -> dict[str, Any] | None:
        raw = cmd if isinstance(cmd, bytes) else json.dumps(cmd).encode()
        return self.h.handle(raw)


@pytest.fixture()
def hx(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_ack_then_resolve_calls_the_engine_emits_its_events_and_replies(hx: Harness) -> None:
    aid = hx.aid
    assert hx.engine.open_counts()["anomalies"] == {("watch", "critical"): 1}
    r1 = hx.send({"id": "c1", "cmd": "ack", "anomaly": aid, "by": "alice"})
    assert r1 == {"id": "c1", "ok": True, "cmd": "ack", "anomaly": aid, "events": 1}
    assert hx.engine.open_counts()["anomalies"] == {("watch", "critical"): 1}  # acknowledged, still open
    r2 = hx.send({"id": "c2", "cmd": "resolve", "anomaly": aid})
    assert r2 is not None and r2["ok"] is True
    assert hx.engine.open_counts()["anomalies"] == {}
    got = [(e.type, e.phase, e.attrs["anomaly"], e.attrs["state"], e.attrs["by"]) for e in hx.bus.events]
    assert got == [("anomaly", "update", aid, "acked", "alice"), ("anomaly", "end", aid, "resolved", "operator")]
    assert [t for t, _ in hx.replies] == ["edge/dev1/cmd/reply"] * 2
    assert hx.h.counts()["ok"] == 2


@pytest.mark.parametrize(
    ("payload", "outcome", "reply_id", "error_part"),
    [
        (b'{"id": "t1", "cmd": "ack", "anom', "invalid", "t1", "payload: not JSON"),
        (b"\xff\xfe\x00garbage", "invalid", None, None),
        (b"[1, 2, 3]", "invalid", None, None),
        (b'{"id": "n1", "cmd": "ack", "anomaly": NaN}', "invalid", "n1", "payload: not JSON"),
        (b'{"id": "m1", "cmd": "ack"}', "invalid", "m1", "anomaly: Field required"),
        (b'{"id": "w1", "cmd": "ack", "anomaly": 5}', "invalid", "w1", "anomaly: Input should be a valid string"),
        (b'{"id": 7, "cmd": "ack", "anomaly": "a1"}', "invalid", 7, "id: Input should be a valid string"),
        (b'{"id": "x1", "cmd": "ack", "anomaly": "a1", "extra": 1}', "invalid", "x1", "extra: Extra inputs"),
        (b'{"id": "u1", "cmd": "reboot"}', "unknown", "u1", "cmd: unknown command 'reboot'"),
        (b'{"id": "u2"}', "unknown", "u2", "cmd: unknown command None"),
        (
            b'{"id": "f1", "cmd": "feedback", "event": "' + EID + b'", "field": "size", "value": "x"}',
            "invalid",
            "f1",
            "field: Input should be 'type', 'plate' or 'color'",
        ),
        (b'{"id": "k1", "cmd": "resolve", "anomaly": "nope"}', "failed", "k1", "anomaly: unknown anomaly 'nope'"),
        (
            b'{"id": "e1", "cmd": "feedback", "event": "' + EID + b'", "field": "type", "value": "van"}',
            "failed",
            "e1",
            "event: unknown or too old event",
        ),
    ],
)
def test_bad_commands_are_answered_with_the_field_at_fault_and_counted(
    hx: Harness, payload: bytes, outcome: str, reply_id: Any, error_part: str | None
) -> None:
    reply = hx.send(payload)
    assert hx.h.counts()[outcome] == 1 and hx.h.total == 1
    if reply_id is None:
        assert reply is None and hx.replies == []  # nothing to correlate a reply with: dropped, counted
        return
    assert reply is not None and reply["id"] == reply_id and reply["ok"] is False
    assert error_part is not None and error_part in reply["error"], reply["error"]
    assert hx.replies == [("edge/dev1/cmd/reply", reply)]


def test_resolving_twice_is_a_clear_failure(hx: Harness) -> None:
    hx.send({"id": "c1", "cmd": "resolve", "anomaly": hx.aid})
    reply = hx.send({"id": "c2", "cmd": "resolve", "anomaly": hx.aid})
    assert reply == {"id": "c2", "ok": False, "error": "anomaly: already resolved"}


def test_engine_crash_is_counted_as_failed_and_the_worker_survives(hx: Harness) -> None:
    def boom(anomaly_id: str, by: str = "operator") -> list[Event]:
        raise RuntimeError("disk on fire")

    hx.engine.ack = boom  # type: ignore[method-assign]
    hx.h.start()
    hx.h.on_message("edge/dev1/cmd/x", json.dumps({"id": "c1", "cmd": "ack", "anomaly": hx.aid}).encode())
    hx.h.on_message("edge/dev1/cmd/x", json.dumps({"id": "c2", "cmd": "resolve", "anomaly": hx.aid}).encode())
    assert hx.h.wait_idle(5)
    hx.h.stop()
    assert [r["ok"] for _, r in hx.replies] == [False, True]
    assert "internal error" in hx.replies[0][1]["error"] and "disk on fire" not in hx.replies[0][1]["error"]
    assert hx.h.counts()["failed"] == 1 and hx.h.counts()["ok"] == 1


def test_oversized_and_overflow_are_refused_on_the_network_thread(tmp_path: Path) -> None:
    hx = Harness(tmp_path, max_bytes=100, queue=2)  # worker not started: the queue fills up
    big = json.dumps({"id": "big1", "cmd": "feedback", "note": "x" * 200}).encode()
    hx.h.on_message("edge/dev1/cmd/x", big)
    for i in range(4):
        hx.h.on_message("edge/dev1/cmd/x", json.dumps({"id": f"q{i}", "cmd": "ack", "anomaly": hx.aid}).encode())
    hx.h.on_message("edge/dev1/cmd/reply", b'{"id": "r", "ok": true}')  # our own reply: ignored
    assert hx.h.counts() == {
        "ok": 0,
        "invalid": 0,
        "unknown": 0,
        "oversized": 1,
        "unauthorized": 0,
        "failed": 0,
        "busy": 2,
    }
    assert hx.replies[0][1] == {"id": "big1", "ok": False, "error": f"payload: {len(big)} bytes (max 100)"}
    assert [r["id"] for _, r in hx.replies[1:]] == ["q2", "q3"]
    assert all(r["error"].startswith("busy:") for _, r in hx.replies[1:])
    hx.h.start()
    assert hx.h.wait_idle(5)
    hx.h.stop()
    assert hx.h.counts()["ok"] == 2 and hx.h.total == 5  # the two queued ones ran once the worker started


def test_signed_commands_unsigned_wrong_old_future_and_replayed_are_refused(tmp_path: Path) -> None:
    secret = "s3cr3t-key"
    hx = Harness(tmp_path, secret=secret, max_age_s=60)

    def signed(cmd: dict[str, Any], key: str = secret) -> dict[str, Any]:
        return {**cmd, "sig": sign(cmd, key)}

    aid = hx.aid
    good = signed({"id": "s1", "cmd": "ack", "anomaly": aid, "ts": int(NOW) - 5})
    assert hx.send(good) == {"id": "s1", "ok": True, "cmd": "ack", "anomaly": aid, "events": 1}
    cases = [
        ({"id": "s2", "cmd": "ack", "anomaly": aid, "ts": int(NOW)}, "sig: missing signature"),
        (
            signed({"id": "s3", "cmd": "ack", "anomaly": aid, "ts": int(NOW)}, "wrong-key"),
            "sig: signature does not match",
        ),
        (
            {**signed({"id": "s4", "cmd": "ack", "anomaly": aid, "ts": int(NOW)}), "anomaly": "0" * 32},
            "sig: signature does not",
        ),
        (signed({"id": "s5", "cmd": "ack", "anomaly": aid}), "ts: signed commands need ts"),
        (
            signed({"id": "s6", "cmd": "ack", "anomaly": aid, "ts": int(NOW) - 61}),
            "ts: command is 61 s old (max 60 s)",
        ),
        (signed({"id": "s7", "cmd": "ack", "anomaly": aid, "ts": int(NOW) + 600}), "in the future"),
        (good, "id: already used (replayed command)"),
    ]
    for cmd, error in cases:
        reply = hx.send(cmd)
        assert reply is not None and reply["ok"] is False and error in reply["error"], (cmd["id"], reply)
    assert hx.h.counts()["unauthorized"] == len(cases) and hx.h.counts()["ok"] == 1
    assert secret not in json.dumps(hx.replies)
    hx.h.stop()
    # a restart does not forget the ids within the replay window
    hx2 = Harness(tmp_path, secret=secret, max_age_s=60)
    assert hx2.send(good) == {"id": "s1", "ok": False, "error": "id: already used (replayed command)"}
    hx2.now = NOW + 120  # past the window the old signature is too old anyway
    assert "ts: command is" in (hx2.send(good) or {})["error"]


def test_outcome_counters_as_prometheus_metrics(hx: Harness) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from edge.commands.metrics import CommandsCollector

    registry = CollectorRegistry()
    registry.register(CommandsCollector(hx.h))
    hx.send(b"not json")
    hx.send({"id": "c1", "cmd": "ack", "anomaly": hx.aid})
    text = generate_latest(registry).decode()
    assert 'edge_commands_total{outcome="invalid"} 1.0' in text
    assert 'edge_commands_total{outcome="ok"} 1.0' in text and 'edge_commands_total{outcome="busy"} 0.0' in text
