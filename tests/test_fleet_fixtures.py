"""Fixtures for the ``edge fleet`` tests (no tests here): a real PostgreSQL 15 on loopback, one
``edge replay`` of the shared car clip per session (with a counting line, so visits exist), and
helpers that publish those events as several devices over MQTT."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import ROOT, need
from tests.fixtures.mqtt import Broker, free_port

PG_BIN = Path(os.environ.get("EDGE_PG_BIN", "/usr/lib/postgresql/15/bin"))
START = "2026-11-22T08:00:00Z"
LINE_CONFIG = """\
device_id: replay
cameras:
  gate:
    url: {video}
    lines:
      middle: {{points: [[0.0, 0.5], [1.0, 0.5]], in: up, road: lot, role: both}}
"""


class Postgres:
    """A throw-away PostgreSQL cluster (trust auth on 127.0.0.1 only); ``database()`` makes a fresh DB."""

    def __init__(self, root: Path) -> None:
        need((PG_BIN / "initdb").is_file() and (PG_BIN / "pg_ctl").is_file(), f"PostgreSQL server in {PG_BIN}")
        self.dir, self.port = root, free_port()
        self.data = root / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:  # postgres refuses to run as root
            need(shutil.which("runuser") is not None, "runuser (to run postgres as a non-root user)")
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(root, "postgres")
        self._n = 0

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=60)

    def start(self) -> Postgres:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "fleet", "--no-sync", "-E", "UTF8")
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.dir} -F -c max_connections=60"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w", "start")
        return self

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def database(self) -> str:
        """A new empty database's SQLAlchemy URL."""
        import psycopg

        self._n += 1
        name = f"fleet{self._n}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=fleet dbname=postgres", autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://fleet@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    # its own dir under /tmp: pytest's tmp dirs are private to root, and postgres runs as user postgres
    root = Path(tempfile.mkdtemp(prefix="edge-fleet-pg-"))
    try:
        pg = Postgres(root).start()
        yield pg
        pg.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def replay_events(car_video: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The car clip through ``edge replay`` with a counting line, once per session (decoded JSONL)."""
    d = tmp_path_factory.mktemp("replay")
    (d / "line.yaml").write_text(LINE_CONFIG.format(video=car_video))
    out = d / "events.jsonl"
    cmd = [sys.executable, "-m", "edge", "replay", str(car_video), "--config", str(d / "line.yaml"), "-q"]
    subprocess.run(
        [*cmd, "--events-out", str(out), "--start-time", START],
        check=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len([e for e in events if e["type"] == "visit"]) >= 2 and len(events) >= 10, events
    return events


def _remap(value: str, device: str) -> str:
    return hashlib.md5(f"{device}:{value}".encode()).hexdigest()


def as_device(events: list[dict[str, Any]], device: str) -> list[dict[str, Any]]:
    """The replay's events as if ``device`` had sent them: its name, and ids (event, visit,
    evidence) of its own, derived from the originals so every call gives the same ids."""
    out = []
    for e in events:
        e = json.loads(json.dumps(e))
        e["device"], e["id"] = device, _remap(e["id"], device)
        a = e.get("attrs") or {}
        for k in ("visit", "anomaly"):
            if k in a:
                a[k] = _remap(a[k], device)
        if "evidence" in a:
            a["evidence"] = [_remap(x, device) for x in a["evidence"]]
        out.append(e)
    return out


class Publisher:
    """A device-like paho client that publishes event dicts on their topics (QoS 1) and waits for PUBACKs."""

    def __init__(self, broker: Broker, prefix: str = "edge") -> None:
        self.prefix = prefix
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{free_port()}", protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(200)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def events(self, events: list[dict[str, Any]]) -> None:
        infos = [
            self.client.publish(
                f"{self.prefix}/{e['device']}/{e['camera']}/events/{e['type']}",
                json.dumps(e, separators=(",", ":")),
                qos=1,
            )
            for e in events
        ]
        for i in infos:
            i.wait_for_publish(20)

    def raw(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(20)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(pred: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def line_event(
    device: str, camera: str, ts: str, *, track: int, direction: str, role: str, plate: str
) -> dict[str, Any]:
    """A crafted counting-line crossing with a read plate (what a plate camera at a gate sends)."""
    attrs = {"line": "gate", "dir": direction, "road": camera, "role": role, "type": "car", "plate": plate}
    e = {"v": 2, "id": _remap(f"{camera}{track}{ts}", device), "device": device, "camera": camera, "type": "line"}
    return {**e, "ts": ts, "seq": track, "track": track, "label": "vehicle", "start": ts, "attrs": attrs}
