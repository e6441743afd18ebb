"""End to end: what `edge run` delivers to a real MQTT subscriber is what `edge replay` writes."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import yaml

from tests.conftest import ROOT
from tests.fixtures.mqtt import Broker, MqttCollector


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _comparable(events: list[dict]) -> list[tuple]:
    """Everything but ids, sequence numbers and wall-clock offsets (each run starts at its own time)."""
    t0 = min(_t(e["start"]) for e in events)
    return sorted(
        (
            e["track"],
            e["phase"],
            e["label"],
            tuple(e["box"]),
            json.dumps(e.get("attrs", {}), sort_keys=True),
            round(_t(e["ts"]) - t0, 2),
            round(_t(e["start"]) - t0, 2),
        )
        for e in events
    )


def test_subscriber_receives_exactly_what_replay_writes(
    tmp_path: Path, broker: Broker, car_video: Path, model_env: Path
) -> None:
    replay_out = tmp_path / "replay.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "replay", str(car_video), "--events-out", str(replay_out), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    replayed = [json.loads(x) for x in replay_out.read_text().splitlines()]

    collector = MqttCollector(broker, topic="edge/#", client_id="e2e-sub")
    try:
        cfg = {
            "device_id": "e2e",
            "cameras": {"camera": {"url": str(car_video), "realtime": False}},
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "topic_prefix": "edge"},
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
            "metrics": {"enabled": False},
        }
        (tmp_path / "edge.yaml").write_text(yaml.safe_dump(cfg))
        run = subprocess.run(
            [sys.executable, "-m", "edge", "run", "--config", str(tmp_path / "edge.yaml")],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        assert run.returncode == 0, run.stderr
        msgs = collector.wait_for(lambda ms: len([m for m in ms if "/events/" in m.topic]) >= len(replayed), 30)
        received = [json.loads(m.payload) for m in msgs if "/events/" in m.topic]
        assert all(m.topic == "edge/e2e/camera/events/track" for m in msgs if "/events/" in m.topic)
        status = [m.payload for m in msgs if m.topic == "edge/e2e/status"]
        assert status and status[-1] == b"offline"  # clean shutdown announced
    finally:
        collector.close()
    unique = {e["id"]: e for e in received}
    assert len(unique) == len(replayed) >= 8
    assert _comparable(list(unique.values())) == _comparable(replayed)
