"""``edge run`` wiring with fake cameras/pipelines (real sources/pipeline in the last test)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.app import run
from edge.config import AppConfig, CameraConfig, parse_config
from edge.events.schema import Event, utc_iso
from edge.types import Frame
from tests.conftest import ROOT
from tests.fixtures.mqtt import Broker, MqttCollector, free_port


class FakeStats:
    frames_read = 0
    connected = False
    capture_fps = 10.0


class FakeReader:
    """Yields ``n`` small frames (``n`` None = forever, paced) until stopped."""

    def __init__(self, name: str, n: int | None, pace: float = 0.0) -> None:
        self.name, self.n, self.pace = name, n, pace
        self.stats = FakeStats()
        self._stop = threading.Event()

    def start(self) -> None:
        self.stats.connected = True

    def stop(self) -> None:
        self._stop.set()

    def __iter__(self) -> Any:
        i = 0
        while not self._stop.is_set() and (self.n is None or i < self.n):
            self.stats.frames_read += 1
            yield Frame(self.name, i, 1_795_000_000.0 + i / 10, np.zeros((16, 16, 3), np.uint8))
            i += 1
            if self.pace:
                time.sleep(self.pace)
        self.stats.connected = False


class FakePipeline:
    """One track event per frame; raises on frames listed in ``fail_on``; one ``end`` on close."""

    fail_on: set[int] = set()

    def __init__(self, camera: str, cfg: CameraConfig, app: AppConfig) -> None:
        self.camera, self.device = camera, app.device_id
        self.on_inference = None

    def _ev(self, phase: str, ts: float) -> Event:
        return Event(
            device=self.device,
            camera=self.camera,
            type="track",
            phase=phase,
            ts=utc_iso(ts),
            track=1,
            label="car",
            score=0.9,
            box=[0.1, 0.1, 0.5, 0.5],
        )

    def process(self, frame: Frame) -> list[Event]:
        if frame.index in self.fail_on:
            raise RuntimeError(f"boom on frame {frame.index}")
        if self.on_inference:
            self.on_inference("fake-model", "fake", 0.001)
        return [self._ev("start" if frame.index == 0 else "update", frame.capture_time)]

    def close(self, now: float) -> list[Event]:
        return [self._ev("end", now)]


def config(tmp_path: Path, cams: dict[str, str], **extra: Any) -> AppConfig:
    data: dict[str, Any] = {
        "device_id": "dev1",
        "cameras": {n: {"url": u} for n, u in cams.items()},
        "outbox": {"path": str(tmp_path / "state.db")},
        "outputs": {"jsonl": str(tmp_path / "events.jsonl")},
        "metrics": {"port": free_port()},
    }
    data.update(extra)
    return parse_config(data)


def jsonl(tmp_path: Path) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]


def test_run_files_to_jsonl_and_mqtt_with_failures_isolated(
    tmp_path: Path, broker: Broker, mqtt_collector: MqttCollector
) -> None:
    attempts: dict[str, int] = {}

    def camera_factory(name: str, cfg: CameraConfig) -> FakeReader:
        attempts[name] = attempts.get(name, 0) + 1
        if name == "flaky" and attempts[name] == 1:
            raise OSError("camera thread dies once")
        return FakeReader(name, 20, 0.05)

    class Failing(FakePipeline):
        fail_on = {3, 4}

    def pipeline_factory(name: str, cfg: CameraConfig, app: AppConfig) -> FakePipeline:
        return Failing(name, cfg, app) if name == "bad" else FakePipeline(name, cfg, app)

    cfg = config(
        tmp_path,
        {"good": "a.mp4", "bad": "b.mp4", "flaky": "c.mp4"},
        mqtt={
            "host": broker.host,
            "port": broker.port,
            "reconnect_min_delay": 1,
            "reconnect_max_delay": 1,
            "stats_interval": 0.2,
        },
    )
    t0 = time.monotonic()
    assert run(cfg, camera_factory=camera_factory, pipeline_factory=pipeline_factory) == 0
    assert time.monotonic() - t0 < 30
    lines = jsonl(tmp_path)
    by_cam = {c: [x for x in lines if x["camera"] == c] for c in ("good", "bad", "flaky")}
    assert len(by_cam["good"]) == 21 and len(by_cam["flaky"]) == 21
    assert len(by_cam["bad"]) == 19  # two frames raised and were skipped; the camera went on
    for evs in by_cam.values():
        assert [e["seq"] for e in evs] == list(range(len(evs)))
        assert evs[-1]["phase"] == "end"
    assert attempts["flaky"] == 2
    got = mqtt_collector.wait_for(lambda ms: len([m for m in ms if "/events/" in m.topic]) >= len(lines))
    assert [json.loads(m.payload) for m in got if "/events/" in m.topic] == lines
    stats = [json.loads(m.payload) for m in got if m.topic == "edge/dev1/stats"]
    assert stats and set(stats[-1]["cameras"]) == {"good", "bad", "flaky"} and "outbox" in stats[-1]
    status = [m.payload for m in got if m.topic == "edge/dev1/status"]
    assert status[-1] == b"offline"


def test_run_without_broker_and_stop_event(tmp_path: Path) -> None:
    stop = threading.Event()
    cfg = config(tmp_path, {"live": "rtsp://user:pw@10.0.0.9/stream"})
    rc: list[int] = []
    th = threading.Thread(
        target=lambda: rc.append(
            run(cfg, stop, camera_factory=lambda n, c: FakeReader(n, None, 0.01), pipeline_factory=FakePipeline)
        )
    )
    th.start()
    import urllib.request

    deadline = time.monotonic() + 10
    body = b""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{cfg.metrics.port}/metrics", timeout=2) as r:
                body = r.read()
            if b'edge_events_total{camera="live",type="track"}' in body:
                break
        except OSError:
            pass
        time.sleep(0.1)
    assert b"edge_inference_seconds_count" in body
    with urllib.request.urlopen(f"http://127.0.0.1:{cfg.metrics.port}/healthz", timeout=2) as r:
        assert json.loads(r.read())["cameras"] == {"live": True}
    stop.set()
    th.join(20)
    assert rc == [0]
    lines = jsonl(tmp_path)
    assert lines[-1]["phase"] == "end" and len(lines) > 2


SIGTERM_CHILD = r"""
import sys
from tests.test_app import FakePipeline, FakeReader, config
from pathlib import Path
from edge.app import run
import logging
logging.basicConfig(level=logging.INFO)
cfg = config(Path(sys.argv[1]), {"cam": "rtsp://cam/stream"})
print("starting", flush=True)
sys.exit(run(cfg, camera_factory=lambda n, c: FakeReader(n, None, 0.01), pipeline_factory=FakePipeline))
"""


def test_sigterm_is_a_graceful_shutdown(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_CHILD, str(tmp_path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            p = tmp_path / "events.jsonl"
            if p.exists() and len(p.read_text().splitlines()) > 5:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "received SIGTERM" in err
    assert jsonl(tmp_path)[-1]["phase"] == "end"  # open tracks were closed and delivered


def test_real_sources_and_pipeline(tmp_path: Path, car_video: Path, model_env: Path) -> None:
    """The real wiring: edge.sources.open_camera and edge.pipeline.Pipeline on the car clip."""
    cfg = config(tmp_path, {"car": str(car_video)})
    cfg = cfg.model_copy(update={"cameras": {"car": cfg.cameras["car"].model_copy(update={"realtime": False})}})
    assert run(cfg) == 0
    lines = jsonl(tmp_path)
    assert lines, "the car clip should produce track events"
    assert {x["type"] for x in lines} <= {"track", "plate", "anomaly", "state"}


def test_snapshot_is_a_small_jpeg() -> None:
    from edge.app import make_snapshot

    img = np.random.default_rng(0).integers(0, 255, (432, 768, 3), dtype=np.uint8)
    jpeg = make_snapshot(Frame("c", 0, 0.0, img), [0.1, 0.1, 0.9, 0.9])
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
    import cv2

    dec = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert max(dec.shape[:2]) <= 160
    assert make_snapshot(Frame("c", 0, 0.0, img), [0.5, 0.5, 0.5, 0.5]) is None


def test_run_exits_non_zero_when_every_frame_fails_in_the_models(
    tmp_path: Path, car_video: Path, model_env: Path, monkeypatch: Any
) -> None:
    """A model that fails on every frame (fault injected into the real detector) stops the
    appliance non-zero with the reason, instead of "all sources finished" and exit 0."""
    from edge.app import EXIT_CAMERA_CRASHED
    from edge.inference.model import Detector

    def broken(self: Detector, image: object) -> None:
        raise RuntimeError("output tensor has the wrong shape")

    monkeypatch.setattr(Detector, "detect", broken)
    cfg = config(tmp_path, {"car": str(car_video)})
    cfg = cfg.model_copy(update={"cameras": {"car": cfg.cameras["car"].model_copy(update={"realtime": False})}})
    assert run(cfg) == EXIT_CAMERA_CRASHED
