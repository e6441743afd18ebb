"""Commands over a real mosquitto: an ``ack``/``resolve`` round trip through the real publisher,
outbox and bus, and a storm of 1,000 bad commands against ``edge.app.run`` while it processes frames."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.app import run
from edge.commands import CommandHandler, sign
from edge.config import CommandsConfig, MqttConfig
from edge.events.bus import EventBus
from edge.events.mqtt import MqttPublisher
from edge.events.outbox import Outbox
from edge.events.schema import Sequencer
from edge.events.sinks import FanOut, MqttSink
from edge.feedback.store import FeedbackStore, default_db_path
from tests.fixtures.mqtt import Broker, MqttCollector, Received, sample_event
from tests.test_app import FakePipeline, FakeReader, config
from tests.test_commands import rule_engine

REPLY = "edge/dev1/cmd/reply"
SECRET = "storm-secret"


class Operator:
    """The other end: a paho client that publishes commands (QoS 1)."""

    def __init__(self, broker: Broker) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="operator", protocol=mqtt.MQTTv311)
        self.client.max_queued_messages_set(0)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, payload: bytes | dict[str, Any], sub: str = "ops") -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(f"edge/dev1/cmd/{sub}", raw, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def replies(collector: MqttCollector) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in collector.matching("/cmd/reply")]


def wait_reply(collector: MqttCollector, cmd_id: Any, timeout: float = 20, nth: int = 1) -> dict[str, Any]:
    """The ``nth`` reply to ``cmd_id`` (the last one seen if more arrived)."""

    def found(ms: list[Received]) -> list[dict[str, Any]]:
        return [r for r in (json.loads(m.payload) for m in ms if m.topic == REPLY) if r.get("id") == cmd_id]

    got = found(collector.wait_for(lambda ms: len(found(ms)) >= nth, timeout))
    assert len(got) >= nth, f"no reply {nth} to {cmd_id!r}"
    return got[-1]


def wait_answering(op: Operator, collector: MqttCollector, secret: str | None = None) -> int:
    """Send probes until the device answers (it has subscribed); returns how many it answered
    (the ones sent before it subscribed are never delivered)."""
    n = 0
    while not any(str(r.get("id")).startswith("probe") for r in replies(collector)):
        probe: dict[str, Any] = {"id": f"probe{n}", "cmd": "resolve", "anomaly": "nothing", "ts": int(time.time())}
        op.send({**probe, "sig": sign(probe, secret)} if secret else probe)
        n += 1
        collector.wait_for(lambda ms: any(m.topic == REPLY for m in ms), 1.0)
        assert n < 30, "the appliance never answered"
    time.sleep(0.5)
    return len({r["id"] for r in replies(collector) if str(r["id"]).startswith("probe")})


def test_ack_and_resolve_over_mqtt_drop_the_open_count(
    tmp_path: Path, broker: Broker, mqtt_collector: MqttCollector
) -> None:
    """The real rule engine behind the real bus, outbox and publisher; the operator only sees MQTT."""
    engine = rule_engine(tmp_path / "rules.sqlite3")
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    pub = MqttPublisher(MqttConfig(host=broker.host, port=broker.port), "dev1", outbox)
    bus = EventBus("dev1", FanOut([MqttSink(pub)]), Sequencer(), processors=[engine])
    store = FeedbackStore(tmp_path / "feedback.sqlite3")
    handler = CommandHandler(
        CommandsConfig(), pub.topics, lambda t, p: pub.publish_direct(t, p, qos=1), store, engine=engine, bus=bus
    ).start()
    bus.processors.append(handler)
    pub.subscribe(pub.topics.cmd("#"), handler.on_message)
    pub.start()
    op = Operator(broker)
    try:
        probes = wait_answering(op, mqtt_collector)
        # a watch-listed plate: the engine raises an anomaly, which the operator receives
        bus.emit(sample_event("cam1", 0, type="plate", phase="start", attrs={"plate": "CA999", "list": "watch"}))
        got = mqtt_collector.wait_for(lambda ms: any("/events/anomaly" in m.topic for m in ms))
        raised = json.loads(next(m.payload for m in got if "/events/anomaly" in m.topic))
        aid = raised["attrs"]["anomaly"]
        assert raised["phase"] == "start" and engine.open_counts()["anomalies"] == {("watch", "critical"): 1}

        op.send({"id": "c1", "cmd": "ack", "anomaly": aid, "by": "alice"})
        assert wait_reply(mqtt_collector, "c1") == {"id": "c1", "ok": True, "cmd": "ack", "anomaly": aid, "events": 1}
        assert engine.open_counts()["anomalies"] == {("watch", "critical"): 1}  # acknowledged, still open
        op.send({"id": "c2", "cmd": "resolve", "anomaly": aid})
        assert wait_reply(mqtt_collector, "c2")["ok"] is True
        assert engine.open_counts()["anomalies"] == {}
        op.send({"id": "c3", "cmd": "resolve", "anomaly": aid})
        assert wait_reply(mqtt_collector, "c3") == {"id": "c3", "ok": False, "error": "anomaly: already resolved"}
        op.send({"id": "c4", "cmd": "ack", "anomaly": "f" * 32})
        assert wait_reply(mqtt_collector, "c4")["error"] == f"anomaly: unknown anomaly '{'f' * 32}'"
        # the engine's events went out through the outbox like any other event
        got = mqtt_collector.wait_for(lambda ms: len([m for m in ms if "/events/anomaly" in m.topic]) >= 3)
        anomalies = [json.loads(m.payload) for m in got if "/events/anomaly" in m.topic]
        assert [(a["phase"], a["attrs"]["anomaly"], a["attrs"]["state"]) for a in anomalies] == [
            ("start", aid, "raised"),
            ("update", aid, "acked"),
            ("end", aid, "resolved"),
        ]
        assert anomalies[1]["attrs"]["by"] == "alice"
        assert all(m.retain is False for m in mqtt_collector.matching("/cmd/reply"))
        assert handler.counts()["ok"] == 2 and handler.counts()["failed"] == 2 + probes
    finally:
        op.close()
        handler.stop()
        bus.close()
        pub.stop()
        store.close()
        engine.close()


def test_commands_are_subscribed_again_after_the_broker_forgot_the_session(
    tmp_path: Path, broker: Broker, mqtt_collector: MqttCollector
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    pub = MqttPublisher(
        MqttConfig(host=broker.host, port=broker.port, reconnect_min_delay=1, reconnect_max_delay=1), "dev1", outbox
    )
    store = FeedbackStore(tmp_path / "feedback.sqlite3")
    handler = CommandHandler(CommandsConfig(), pub.topics, lambda t, p: pub.publish_direct(t, p, qos=1), store).start()
    pub.subscribe(pub.topics.cmd("#"), handler.on_message)
    pub.start()
    op = Operator(broker)
    try:
        wait_answering(op, mqtt_collector)
        op.close()
        mqtt_collector.close()
        broker.stop()
        for f in broker.dir.glob("*.db"):  # a broker that lost its state: no sessions, no subscriptions
            f.unlink()
        broker.start()
        collector = MqttCollector(broker, client_id="collector-2")
        op = Operator(broker)
        deadline = time.monotonic() + 20
        while pub.connects < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pub.connects >= 2, "the publisher did not reconnect"
        n = 0
        while not replies(collector) and n < 40:
            op.send({"id": f"again{n}", "cmd": "feedback", "event": "0" * 32, "field": "type", "value": "van"})
            collector.wait_for(lambda ms: any(m.topic == REPLY for m in ms), 0.5)
            n += 1
        assert replies(collector) and replies(collector)[0]["error"].startswith("event: unknown")
        collector.close()
    finally:
        op.close()
        handler.stop()
        pub.stop()
        store.close()


def storm_payloads(event_id: str, n: int = 1000, seed: int = 8) -> tuple[list[bytes], set[str]]:
    """``n`` bad commands of every kind; returns them and the ids a reply can be matched to."""
    rng = random.Random(seed)
    out: list[bytes] = []
    ids: set[str] = set()
    now = int(time.time())
    for i in range(n):
        kind, cid = i % 8, f"s{i}"
        if kind == 0:  # random bytes
            out.append(rng.randbytes(rng.randint(0, 300)))
            continue
        if kind == 1:  # truncated JSON that still shows its id
            full = json.dumps({"id": cid, "cmd": "ack", "anomaly": "a1", "ts": now})
            out.append(full[: rng.randint(len(cid) + 10, len(full) - 1)].encode())
        elif kind == 2:  # wrong types, correctly signed: refused by validation
            cmd: dict[str, Any] = {
                "id": cid,
                "cmd": "feedback",
                "event": 5,
                "field": ["type"],
                "value": None,
                "ts": now,
            }
            out.append(json.dumps({**cmd, "sig": sign(cmd, SECRET)}).encode())
        elif kind == 3:  # huge
            out.append(json.dumps({"id": cid, "cmd": "feedback", "note": "x" * rng.randint(5000, 200_000)}).encode())
        elif kind == 4:  # unknown command, correctly signed
            cmd = {"id": cid, "cmd": rng.choice(["reboot", "shell", "", "ACK"]), "ts": now}
            out.append(json.dumps({**cmd, "sig": sign(cmd, SECRET)}).encode())
        elif kind == 5:  # signed with the wrong key
            cmd = {"id": cid, "cmd": "ack", "anomaly": "a1", "ts": now}
            out.append(json.dumps({**cmd, "sig": sign(cmd, "guessed")}).encode())
        elif kind == 6:  # unsigned, or signed but stale
            cmd = {"id": cid, "cmd": "feedback", "event": event_id, "field": "type", "value": "van", "ts": now - 3600}
            out.append(json.dumps({**cmd, "sig": sign(cmd, SECRET)} if i % 16 == 6 else cmd).encode())
        else:  # valid JSON of the wrong shape
            out.append(json.dumps(rng.choice([[cid], cid, None, 3.5, {"id": None}])).encode())
            continue
        ids.add(cid)
    return out, ids


def test_a_storm_of_bad_commands_is_answered_or_counted_while_frames_and_events_flow(
    tmp_path: Path, broker: Broker, mqtt_collector: MqttCollector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.app")
    cfg = config(
        tmp_path,
        {"cam": "rtsp://cam/stream"},
        mqtt={"host": broker.host, "port": broker.port, "snapshots": True, "reconnect_min_delay": 1},
        commands={"secret": SECRET, "max_bytes": 2048, "max_age_s": 120},
    )
    readers: list[FakeReader] = []

    def camera_factory(name: str, c: Any) -> FakeReader:
        readers.append(FakeReader(name, None, 0.01))
        return readers[-1]

    stop = threading.Event()
    th = threading.Thread(
        target=run, args=(cfg, stop), kwargs={"camera_factory": camera_factory, "pipeline_factory": FakePipeline}
    )
    th.start()
    op = Operator(broker)
    try:
        # wait until the appliance answers (subscribed), with a signed command that fails cleanly
        probes = wait_answering(op, mqtt_collector, SECRET)
        first = json.loads(
            next(
                m.payload
                for m in mqtt_collector.wait_for(lambda ms: any("/events/track" in m.topic for m in ms))
                if "/events/track" in m.topic
            )
        )
        payloads, ids = storm_payloads(first["id"])
        frames_before = readers[0].stats.frames_read
        t0 = time.monotonic()
        for p in payloads:
            op.send(p, sub=random.choice(["ops", "x/y", "ack"]))
        got = mqtt_collector.wait_for(
            lambda ms: {json.loads(m.payload).get("id") for m in ms if m.topic == REPLY} >= ids, 60
        )
        elapsed = time.monotonic() - t0
        answered = {json.loads(m.payload)["id"] for m in got if m.topic == REPLY}
        assert ids <= answered, f"{len(ids - answered)} commands with an id got no reply"
        assert all(json.loads(m.payload)["ok"] is False for m in got if m.topic == REPLY)
        print(
            f"\nstorm: {len(payloads)} commands answered/counted in {elapsed:.2f} s ({len(payloads) / elapsed:.0f}/s)"
        )
        time.sleep(0.3)
        assert readers[0].stats.frames_read > frames_before + 20, "frames stopped during the storm"
        # still alive afterwards: a good, signed feedback on the first track event, once its crop
        # is out (privacy masking makes it on a background thread, models loading first)
        mqtt_collector.wait_for(lambda ms: any(m.topic.endswith(f"/snapshot/{first['id']}") for m in ms), 60)
        good = {
            "id": "after",
            "cmd": "feedback",
            "event": first["id"],
            "field": "type",
            "value": "van",
            "ts": int(time.time()),
        }
        op.send({**good, "sig": sign(good, SECRET)})
        assert wait_reply(mqtt_collector, "after")["ok"] is True
    finally:
        stop.set()
        th.join(30)
        op.close()
    assert not th.is_alive()
    # every event written while the storm raged also arrived over MQTT (nothing lost from the outbox)
    lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    got = mqtt_collector.wait_for(lambda ms: len([m for m in ms if "/events/" in m.topic]) >= len(lines))
    assert [json.loads(m.payload)["id"] for m in got if "/events/" in m.topic] == [x["id"] for x in lines]
    # every payload ended in exactly one counted outcome
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("commands: "))
    counts = {k: int(v) for k, v in (kv.split("=") for kv in line.removeprefix("commands: ").split())}
    assert sum(counts.values()) == len(payloads) + probes + 1, counts
    assert counts["ok"] == 1 and counts["failed"] == probes
    assert counts["oversized"] == 125  # refused on the network thread, before the queue
    busy = counts["busy"]  # overflow depends on the machine's speed; every other outcome is fixed by the payloads
    assert counts["unknown"] + busy >= 125 and counts["unauthorized"] + busy >= 250 and counts["invalid"] + busy >= 375
    assert counts["unknown"] <= 125 and counts["unauthorized"] <= 250 + 125 and counts["invalid"] <= 500
    store = FeedbackStore(default_db_path(cfg))
    rows = store.feedback()
    store.close()
    assert [(r.event, r.new) for r in rows] == [(first["id"], "van")]
    assert rows[0].jpeg is not None and rows[0].jpeg[:2] == b"\xff\xd8"  # the app's snapshot of that track
