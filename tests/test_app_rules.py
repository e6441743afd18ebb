"""The rule engine inside ``edge run``: visits and anomalies delivered like any event, open counts
in /metrics and the stats message, rules reloaded on SIGHUP without a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from edge.app import run
from edge.config import AppConfig, CameraConfig, parse_config
from edge.events.schema import Event, utc_iso
from edge.types import Frame
from tests.conftest import ROOT
from tests.fixtures.mqtt import Broker, MqttCollector, free_port
from tests.test_app import FakeReader

# A site that is never open: every entry is after hours, whenever the test runs.
RULES = [{"id": "late", "kind": "after_hours", "open": {"mon": "closed"}, "severity": "critical"}]


class LiveReader(FakeReader):
    """FakeReader with wall-clock capture times, as a live camera has: ``edge run`` ticks the
    rules with the wall clock, so event times must be on it too."""

    def __iter__(self) -> Any:
        for frame in super().__iter__():
            yield Frame(frame.camera, frame.index, time.time(), frame.image)


class EntryPipeline:
    """Frame 0: car #1 crosses the entry line (what the geometry stage emits); then nothing."""

    def __init__(self, camera: str, cfg: CameraConfig, app: AppConfig) -> None:
        self.camera = camera
        self.on_inference = None

    def process(self, frame: Frame) -> list[Event]:
        if frame.index != 0:
            return []
        attrs = {"line": "gate", "dir": "in", "road": "Bypass Street", "role": "entry", "type": "truck"}
        ev = Event(device="", camera=self.camera, type="line", ts=utc_iso(frame.capture_time), track=1, attrs=attrs)
        return [ev]

    def close(self, now: float) -> list[Event]:
        return []


def _config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "device_id": "dev1",
        "cameras": {"gate": {"url": "rtsp://cam/stream"}},
        "outbox": {"path": str(tmp_path / "state.db")},
        "outputs": {"jsonl": str(tmp_path / "events.jsonl")},
        "metrics": {"port": free_port()},
        "rules": {"rules": RULES},
        **extra,
    }


def _events(tmp_path: Path) -> list[dict[str, Any]]:
    p = tmp_path / "events.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def _wait(pred: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    return pred()


def test_entry_after_hours_is_a_visit_and_one_anomaly_with_open_counts(
    tmp_path: Path, broker: Broker, mqtt_collector: MqttCollector
) -> None:
    data = _config(tmp_path, mqtt={"host": broker.host, "port": broker.port, "stats_interval": 0.3})
    cfg = parse_config(data)
    stop = threading.Event()
    t = threading.Thread(
        target=run,
        args=(cfg, stop),
        kwargs={"camera_factory": lambda n, c: LiveReader(n, None, 0.02), "pipeline_factory": EntryPipeline},
    )
    t.start()
    try:
        wanted = {("visit", "start"), ("anomaly", "start")}
        assert _wait(lambda: {(e["type"], e.get("phase")) for e in _events(tmp_path)} >= wanted), _events(tmp_path)
        body = urllib.request.urlopen(f"http://127.0.0.1:{data['metrics']['port']}/metrics", timeout=5).read().decode()
        assert 'edge_anomalies_open{rule="late",severity="critical"} 1.0' in body
        assert "edge_visits_open 1.0" in body
        msgs = _wait(lambda: [m for m in mqtt_collector.matching("dev1/stats") if b'"open"' in m.payload])
        assert msgs and json.loads(msgs[-1].payload)["open"] == {"visits": 1, "anomalies": 1}
    finally:
        stop.set()
        t.join(30)
    events = _events(tmp_path)
    anomalies = [e for e in events if e["type"] == "anomaly"]
    assert len(anomalies) == 1, anomalies  # one situation, one anomaly (ticks do not repeat it)
    a = anomalies[0]
    assert a["attrs"]["rule"] == "late" and a["attrs"]["state"] == "raised" and a["device"] == "dev1"
    assert "Bypass Street" in a["attrs"]["reason"] and "after hours" in a["attrs"]["reason"]
    visit = next(e for e in events if e["type"] == "visit")
    assert visit["attrs"]["road_in"] == "Bypass Street" and visit["attrs"]["entry_camera"] == "gate"


SIGHUP_CHILD = r"""
import logging, sys
from edge.app import run
from edge.config import load_config
from tests.test_app_rules import EntryPipeline, LiveReader
logging.basicConfig(level=logging.INFO)
path = sys.argv[1]
sys.exit(run(load_config(path), camera_factory=lambda n, c: LiveReader(n, None, 0.02),
             pipeline_factory=EntryPipeline, config_path=path))
"""


def test_sighup_reloads_rules_and_keeps_the_open_visit(tmp_path: Path) -> None:
    data = _config(tmp_path)
    data["rules"] = {"rules": []}  # no anomaly rule at first: the entry only opens a visit
    cfg_file = tmp_path / "edge.yaml"
    cfg_file.write_text(yaml.safe_dump(data))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGHUP_CHILD, str(cfg_file)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    port = data["metrics"]["port"]

    def scrape() -> str:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            return ""

    try:
        assert _wait(lambda: "edge_visits_open 1.0" in scrape()), scrape()
        assert 'edge_anomalies_open{rule="late"' not in scrape()
        # a broken file is refused and the running rules stay
        cfg_file.write_text("rules: [{id: late, kind: after_hours}]\ncameras: {}\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None and "edge_visits_open 1.0" in scrape()
        data["rules"] = {"rules": RULES}
        cfg_file.write_text(yaml.safe_dump(data))
        proc.send_signal(signal.SIGHUP)
        assert _wait(lambda: 'edge_anomalies_open{rule="late",severity="critical"} 0.0' in scrape()), scrape()
        assert "edge_visits_open 1.0" in scrape()  # the visit opened before the reload is still open
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "rules not reloaded" in err and "rules reloaded from" in err, err
