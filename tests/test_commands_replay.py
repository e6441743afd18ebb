"""Replaying HMAC-signed commands over a real mosquitto (issue 21 item 7): a command dated ahead
of the device clock beyond ``max_clock_skew_s`` is refused, and a command's id is remembered for
the whole time its ``ts`` is accepted, so one sent again after ``max_age_s`` is still a replay."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.commands import CommandHandler, sign
from edge.config import CommandsConfig, MqttConfig
from edge.events.mqtt import MqttPublisher
from edge.events.outbox import Outbox
from edge.feedback.store import FeedbackStore
from tests.fixtures.mqtt import Broker, MqttCollector
from tests.test_commands_mqtt import Operator, wait_answering, wait_reply

SECRET = "replay-secret"


@pytest.fixture()
def start_device(tmp_path: Path, broker: Broker) -> Iterator[Callable[[float], CommandHandler]]:
    """``start_device(max_age_s)``: the real publisher and command handler on the broker, signed
    commands required, default clock skew."""
    parts: list[Any] = []

    def start(max_age_s: float) -> CommandHandler:
        cfg = CommandsConfig(secret=SECRET, max_age_s=max_age_s)
        pub = MqttPublisher(MqttConfig(host=broker.host, port=broker.port), "dev1", Outbox(tmp_path / "o.sqlite3"))
        store = FeedbackStore(tmp_path / "feedback.sqlite3")
        handler = CommandHandler(cfg, pub.topics, lambda t, p: pub.publish_direct(t, p, qos=1), store).start()
        pub.subscribe(pub.topics.cmd("#"), handler.on_message)
        pub.start()
        parts.extend([handler, pub, store])
        return handler

    yield start
    for part in parts:
        part.stop() if hasattr(part, "stop") else part.close()


def signed(cid: str, ts: float) -> dict[str, Any]:
    cmd: dict[str, Any] = {"id": cid, "cmd": "resolve", "anomaly": "a1", "ts": int(ts)}
    return {**cmd, "sig": sign(cmd, SECRET)}


def test_a_command_dated_beyond_the_clock_skew_is_refused(
    start_device: Callable[[float], CommandHandler], broker: Broker, mqtt_collector: MqttCollector
) -> None:
    start_device(300)
    op = Operator(broker)
    try:
        wait_answering(op, mqtt_collector, SECRET)
        op.send(signed("ahead10", time.time() + 10))  # within the default 30 s skew: accepted
        assert "cmd: no rule engine" in wait_reply(mqtt_collector, "ahead10")["error"]
        op.send(signed("ahead120", time.time() + 120))  # within max_age_s (300) but far ahead
        reply = wait_reply(mqtt_collector, "ahead120")
        assert reply["ok"] is False and reply["error"].startswith("ts: command is 1"), reply
        assert "in the future (max 30 s" in reply["error"], reply
    finally:
        op.close()


def test_a_command_replayed_after_max_age_is_still_refused(
    start_device: Callable[[float], CommandHandler], broker: Broker, mqtt_collector: MqttCollector
) -> None:
    device = start_device(2)
    op = Operator(broker)
    try:
        wait_answering(op, mqtt_collector, SECRET)
        cmd = signed("early", time.time() + 2)  # dated 2 s ahead: accepted for ~4 s from now
        op.send(cmd)
        first = wait_reply(mqtt_collector, "early")
        assert "cmd: no rule engine" in first["error"], first  # authenticated, then executed (no engine here)
        before = device.counts()["unauthorized"]
        time.sleep(3)  # past max_age_s after it was first seen, its ts still fresh
        op.send(cmd)
        again = wait_reply(mqtt_collector, "early", nth=2)
        assert again == {"id": "early", "ok": False, "error": "id: already used (replayed command)"}, again
        assert device.counts()["unauthorized"] == before + 1
    finally:
        op.close()
