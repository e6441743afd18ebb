"""Replaying signed updates against a device on a real mosquitto (issue 21 item 7): an older
signed update sent after a newer one was applied must not roll the device back, also after the
device restarted; an update dated ahead of the device clock beyond the skew is refused."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from tests.fixtures.mqtt import Broker, MqttCollector, free_port
from tests.test_fleetops_update import Device, Operator, device_config, scrape, write_key


def test_an_older_signed_update_cannot_roll_the_device_back_even_after_a_restart(
    tmp_path: Path, broker: Broker, mqtt_collector: MqttCollector
) -> None:
    key = write_key(tmp_path / "update.pub")
    port = free_port()
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(device_config(tmp_path, broker, "rtsp://cam/v1", port)))
    v2 = yaml.safe_dump(device_config(tmp_path, broker, "rtsp://cam/v2", port))
    v3 = yaml.safe_dump(device_config(tmp_path, broker, "rtsp://cam/v3", port))
    op = Operator(broker, mqtt_collector, key)
    now = int(time.time())
    # the operator signed v2, then v3 (both captured on the wire by an attacker)
    old = op.command(kind="config", config=v2, version="v2", ts=now - 20)
    new = op.command(kind="config", config=v3, version="v3", ts=now - 10)
    try:
        with Device(path):
            op.status(lambda s: s["state"] == "online")
            op.ready()
            assert op.send(new)["ok"]
            op.status(lambda s: s["config_version"] == "v3" and s["update"] == "confirmed")
            op.ready()
            r = op.send(old)  # never seen by the device, validly signed, fresh: but older than v3
            assert r["ok"] is False, r
            assert r["error"].startswith("ts: update signed at ") and "is not newer than the last update" in r["error"]
            ahead = op.command(kind="config", config=v2, version="v2-ahead", ts=int(time.time()) + 120)
            r = op.send(ahead)  # dated ahead of the device clock beyond the 30 s skew
            assert r["ok"] is False and "s in the future (max 30 s" in r["error"], r
        assert path.read_text() == v3
        with Device(path):  # a restart does not reopen the window
            op.status(lambda s: s["state"] == "online" and s["config_version"] == "v3")
            op.ready()
            older = op.command(kind="config", config=v2, version="v2-again", ts=now - 15)
            r = op.send(older)
            assert r["ok"] is False and "is not newer than the last update" in r["error"], r
            text = scrape(port)
            assert 'edge_update_results_total{result="replayed"} 1.0' in text, text  # counted (this run)
            assert path.read_text() == v3
    finally:
        op.close()
