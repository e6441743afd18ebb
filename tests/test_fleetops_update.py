"""Signed remote config updates against real mosquitto: refused (unsigned, wrong key, other
device, invalid, replayed) with replies and counters; applied and confirmed; applied and rolled
back by the device when its camera never connects; each version in the retained status."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from edge.app import run
from edge.config import AppConfig, CameraConfig, load_config
from edge.update import sign_update
from tests.fixtures.mqtt import Broker, MqttCollector, free_port
from tests.test_app import FakePipeline, FakeReader
from tests.test_fleetops_monitoring import DeadReader

ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")


def write_key(path: Path) -> Any:
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return key


def device_config(tmp_path: Path, broker: Any, url: str, metrics_port: int, **extra: Any) -> dict[str, Any]:
    data = {
        "device_id": "dev1",
        "cameras": {"gate": {"url": url}},
        "mqtt": {"host": broker.host, "port": broker.port, "reconnect_min_delay": 1, "reconnect_max_delay": 1},
        "outbox": {"path": str(tmp_path / "state.db")},
        "metrics": {"port": metrics_port},
        "update": {"enabled": True, "public_keys": [str(tmp_path / "update.pub")], "health_timeout": 3},
    }
    data.update(extra)
    return data


def camera_factory(name: str, cc: CameraConfig) -> Any:
    return DeadReader() if "never" in cc.url else FakeReader(name, None, 0.05)


def pipeline_factory(name: str, cc: CameraConfig, app: AppConfig) -> FakePipeline:
    return FakePipeline(name, cc, app)


class Device:
    """``edge.app.run`` on the config file ``path`` with fake cameras and pipelines, in a thread;
    a context manager (stops it and checks it ended)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=run,
            args=(load_config(path), self.stop),
            kwargs={"config_path": str(path), "camera_factory": camera_factory, "pipeline_factory": pipeline_factory},
        )

    def __enter__(self) -> Device:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the device did not stop"


class Operator:
    """Publishes update commands and waits for their replies and for status changes."""

    def __init__(self, broker: Broker, collector: MqttCollector, key: Any) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.key, self.col = key, collector
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="operator", protocol=mqtt.MQTTv311)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.n = 0

    def command(self, device: str = "dev1", key: Any = "default", **fields: Any) -> dict[str, Any]:
        self.n += 1
        cmd = {"id": f"u{self.n}", "cmd": "update", "ts": round(time.time(), 3), "device": device, **fields}
        if key == "default":
            key = self.key
        if key is not None:
            cmd["sig"] = sign_update(cmd, key)
        return cmd

    def send(self, cmd: dict[str, Any], timeout: float = 15) -> dict[str, Any]:
        self.client.publish("edge/dev1/cmd/update", json.dumps(cmd), qos=1).wait_for_publish(5)
        return self.reply(cmd["id"], timeout)

    def reply(self, cid: str, timeout: float = 15, nth: int = 1) -> dict[str, Any]:
        def replies(msgs: list[Any]) -> list[dict[str, Any]]:
            out = [json.loads(m.payload) for m in msgs if m.topic == "edge/dev1/cmd/reply"]
            return [r for r in out if r.get("id") == cid]

        msgs = self.col.wait_for(lambda m: len(replies(m)) >= nth, timeout)
        got = replies(msgs)
        assert len(got) >= nth, f"no reply to {cid}"
        return got[nth - 1]

    def ready(self, timeout: float = 20) -> None:
        """Wait until the device answers commands (it subscribes just after it says online)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.n += 1
            cid = f"probe{self.n}"
            self.client.publish("edge/dev1/cmd/probe", json.dumps({"id": cid, "cmd": "probe"}), qos=1)
            try:
                self.reply(cid, timeout=0.5)
                return
            except AssertionError:
                continue
        raise AssertionError("the device never answered a command")

    def status(self, pred: Any, timeout: float = 20) -> dict[str, Any]:
        def statuses(msgs: list[Any]) -> list[dict[str, Any]]:
            out = []
            for m in msgs:
                if m.topic == "edge/dev1/status" and m.payload.startswith(b"{"):
                    out.append(json.loads(m.payload))
            return out

        msgs = self.col.wait_for(lambda m: any(pred(s) for s in statuses(m)), timeout)
        hits = [s for s in statuses(msgs) if pred(s)]
        assert hits, f"no such status; seen: {statuses(msgs)}"
        return hits[-1]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def test_remote_update_refused_applied_and_rolled_back(
    tmp_path: Path, broker: Broker, mqtt_collector: MqttCollector, record_property: Any
) -> None:
    key = write_key(tmp_path / "update.pub")
    wrong = ed25519.Ed25519PrivateKey.generate()
    port = free_port()
    path = tmp_path / "edge.yaml"
    v1_text = yaml.safe_dump(device_config(tmp_path, broker, "rtsp://cam/gate", port))
    path.write_text(v1_text)
    stop = threading.Event()
    t = threading.Thread(
        target=run,
        args=(load_config(path), stop),
        kwargs={"config_path": str(path), "camera_factory": camera_factory, "pipeline_factory": pipeline_factory},
    )
    t.start()
    op = Operator(broker, mqtt_collector, key)
    try:
        first = op.status(lambda s: s["state"] == "online")
        op.ready()
        v1 = first["config_version"]
        assert first["update"] == "none" and len(v1) == 12  # unlabelled: the file's hash

        good = yaml.safe_dump(device_config(tmp_path, broker, "rtsp://cam/gate2", port))
        refused = {
            "unsigned": op.command(key=None, kind="config", config=good),
            "wrong key": op.command(key=wrong, kind="config", config=good),
            "other device": op.command(device="dev2", kind="config", config=good),
            "invalid": op.command(kind="config", config="device_id: dev1\ncameras: {}\n"),
            "stale": op.command(kind="config", config=good, ts=int(time.time()) - 3600),
        }
        refused["stale"]["sig"] = sign_update({k: v for k, v in refused["stale"].items() if k != "sig"}, key)
        errors = {name: op.send(cmd) for name, cmd in refused.items()}
        assert all(r["ok"] is False for r in errors.values()), errors
        assert "missing signature" in errors["unsigned"]["error"]
        assert "does not match" in errors["wrong key"]["error"]
        assert "device" in errors["other device"]["error"]
        assert errors["invalid"]["error"].startswith("config:") and "cameras" in errors["invalid"]["error"]
        assert "old" in errors["stale"]["error"]
        assert path.read_text() == v1_text  # nothing refused touched the file

        # a good update: applied, run() restarts with it, cameras up -> confirmed
        upd = op.command(kind="config", config=good, version="v2")
        t0 = time.monotonic()
        r = op.send(upd)
        assert r["ok"] and r["version"] == "v2" and r["previous"] == v1 and r["restarting"], r
        op.status(lambda s: s["config_version"] == "v2" and s["update"] == "confirmed")
        print(f"update: {time.monotonic() - t0:.1f} s from sending it to the confirmed status")
        op.ready()
        assert path.read_text() == good
        assert load_config(path).cameras["gate"].url == "rtsp://cam/gate2"
        # the same signed command again: replayed
        op.client.publish("edge/dev1/cmd/update", json.dumps(upd), qos=1).wait_for_publish(5)
        again = op.reply(upd["id"], nth=2)
        assert again["ok"] is False and "replayed" in again["error"], again

        # a bad update: the camera never connects -> rolled back by the device after health_timeout
        bad = yaml.safe_dump(device_config(tmp_path, broker, "rtsp://never/gate", port))
        t0 = time.monotonic()
        r = op.send(op.command(kind="config", config=bad, version="v3-bad"))
        assert r["ok"] and r["version"] == "v3-bad", r
        op.status(lambda s: s["config_version"] == "v3-bad" and s["update"] == "pending")
        back = op.status(lambda s: s["config_version"] == "v2" and s["update"] == "rolled_back", timeout=30)
        rollback_s = time.monotonic() - t0
        assert back["state"] == "online"
        record_property("rollback_seconds", round(rollback_s, 2))
        print(f"rollback: {rollback_s:.1f} s from the update reply to the status of the restored config")
        assert path.read_text() == good
        op.ready()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the restored camera is up again
            try:
                if 'edge_camera_up{camera="gate"} 1.0' in scrape(port):
                    break
            except OSError:
                pass
            time.sleep(0.2)
        text = scrape(port)
        for result, n in {
            "applied": 2,
            "confirmed": 1,
            "rolled_back": 1,
            "unauthorized": 3,
            "refused": 1,
            "invalid": 1,
            "replayed": 1,
        }.items():
            assert f'edge_update_results_total{{result="{result}"}} {n}.0' in text, (result, text)
        assert 'config_version="v2"' in text and 'update="rolled_back"' in text
    finally:
        stop.set()
        t.join(30)
        op.close()
    assert not t.is_alive()


def test_operator_tool_keygen_and_sign_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.update.__main__ import main
    from edge.update.signing import BadSignature, load_public_keys, verify_update

    assert main(["keygen", str(tmp_path / "k.pem"), str(tmp_path / "k.pub")]) == 0
    (tmp_path / "new.yaml").write_text("device_id: edge-1\ncameras: {gate: {url: rtsp://cam/gate}}\n")
    argv = ["sign", "--key", str(tmp_path / "k.pem"), "--device", "edge-1", "--config", str(tmp_path / "new.yaml")]
    assert main([*argv, "--version", "v7"]) == 0
    cmd = json.loads(capsys.readouterr().out)
    keys = load_public_keys([tmp_path / "k.pub"])
    verify_update(cmd, keys)
    assert cmd["kind"] == "config" and cmd["version"] == "v7" and cmd["device"] == "edge-1"
    with pytest.raises(BadSignature):
        verify_update({**cmd, "device": "edge-2"}, keys)  # a signed update cannot be re-aimed


def _pending_update(tmp_path: Path) -> tuple[Path, str, str]:
    """A config file with a signed update to it applied (pending): (path, old text, new text)."""
    from edge.update import UpdateManager

    key = write_key(tmp_path / "update.pub")
    path = tmp_path / "edge.yaml"
    fake = SimpleNamespace(host="127.0.0.1", port=1)  # no broker: run() is not called with it
    old = yaml.safe_dump(device_config(tmp_path, fake, "rtsp://cam/old", 1))
    new = yaml.safe_dump(device_config(tmp_path, fake, "rtsp://cam/new", 1))
    path.write_text(old)
    mgr = UpdateManager(path, load_config(path))
    cmd = {"id": "x1", "cmd": "update", "ts": int(time.time()), "device": "dev1", "kind": "config", "config": new}
    cmd["sig"] = sign_update(cmd, key)
    assert mgr.handle(cmd)["restarting"]
    mgr.close()
    assert path.read_text() == new
    return path, old, new


def test_update_that_crashes_run_is_rolled_back(tmp_path: Path) -> None:
    from edge.update import run_with_updates

    path, old, new = _pending_update(tmp_path)
    urls: list[str] = []

    def fake_run(cfg: AppConfig, stop: threading.Event, **kw: Any) -> int:
        urls.append(cfg.cameras["gate"].url)
        return 3 if len(urls) == 1 else 0  # the new config crashes the appliance (exit 3)

    assert run_with_updates(fake_run, load_config(path), path) == 0
    assert urls == ["rtsp://cam/new", "rtsp://cam/old"]
    assert path.read_text() == old
    state = json.loads((tmp_path / ".edge.yaml.update" / "state.json").read_text())
    assert state["pending"] is None and state["last"]["result"] == "rolled_back"
    assert "exited with code 3" in state["last"]["reason"]


def test_pending_update_past_its_deadline_rolls_back_at_start(tmp_path: Path) -> None:
    from edge.update import UpdateManager

    path, old, new = _pending_update(tmp_path)
    later = time.time() + 3600  # the process was down (crashed, hung, power cut) past the deadline
    mgr = UpdateManager(path, load_config(path), clock=lambda: later)
    mgr.recover()
    mgr.close()
    assert path.read_text() == old and mgr.restart_requested.is_set()
    assert mgr.info()["update"] == "rolled_back"
