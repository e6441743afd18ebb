"""Prometheus metrics: live /metrics passes promtool, /healthz answers, duck-typed stats."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from edge.events.outbox import Outbox
from edge.metrics import Metrics, MetricsServer, read_temperatures
from edge.pipeline import PipelineStats
from edge.sources import ReaderStats
from tests.conftest import need_exe


class FakeReader:  # the real stats types, so a renamed field breaks this test
    stats = ReaderStats(
        frames_read=120,
        frames_dropped=3,
        frames_sampled=60,
        reconnects=1,
        stalls=0,
        connected=True,
        capture_fps=12.5,
        last_frame_time=1_795_000_000.0,
    )


class FakePipeline:
    stats = PipelineStats(
        frames_in=60, frames_inferred=20, frames_motion_skipped=40, active_tracks=2, events_by_type={"track": 5}
    )
    on_inference = None


class Bare:  # a reader/pipeline that has not grown stats yet
    pass


@pytest.fixture()
def live(tmp_path: Path) -> tuple[Metrics, MetricsServer]:
    thermal = tmp_path / "thermal" / "thermal_zone0"
    thermal.mkdir(parents=True)
    (thermal / "temp").write_text("48312\n")
    (thermal / "type").write_text("cpu-thermal\n")
    m = Metrics("dev1", thermal_dir=tmp_path / "thermal")
    pipe = FakePipeline()
    m.add_camera("cam1", FakeReader(), pipe)
    m.add_camera("cam2", Bare(), Bare())
    assert pipe.on_inference is not None
    pipe.on_inference("vehicle-detection-0200", "openvino", 0.031)
    m.outbox = Outbox(tmp_path / "o.db")
    m.outbox.put("t", b"x")

    class Pub:
        connected, inflight, connects = True, 0, 1

    m.publisher = Pub()
    m.observe_publish(0.004)

    class Ev:
        camera, type = "cam1", "track"

    m.count_event(Ev())
    srv = MetricsServer(m, "127.0.0.1", 0, health=lambda: {"ok": True, "cameras": {"cam1": True}}).start()
    yield m, srv
    srv.stop()
    m.outbox.close()


def get(srv: MetricsServer, path: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}{path}", timeout=5) as r:
            return r.status, r.read(), r.headers["Content-Type"]
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers["Content-Type"]


def test_live_metrics_pass_promtool(live: tuple[Metrics, MetricsServer]) -> None:
    promtool = need_exe("promtool")
    _, srv = live
    code, body, ctype = get(srv, "/metrics")
    assert code == 200 and ctype.startswith("text/plain")
    text = body.decode()
    res = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()
    for needle in (
        'edge_camera_frames_read_total{camera="cam1"} 120.0',
        'edge_camera_frames_dropped_total{camera="cam1"} 3.0',
        'edge_pipeline_frames_inferred_total{camera="cam1"} 20.0',
        'edge_camera_capture_fps{camera="cam1"} 12.5',
        'edge_camera_reconnects_total{camera="cam1"} 1.0',
        'edge_camera_stalls_total{camera="cam1"} 0.0',
        'edge_camera_up{camera="cam1"} 1.0',
        'edge_camera_up{camera="cam2"} 0.0',
        'edge_pipeline_motion_gated_ratio{camera="cam1"} 0.6666666666666666',
        'edge_pipeline_active_tracks{camera="cam1"} 2.0',
        'edge_inference_seconds_count{backend="openvino",model="vehicle-detection-0200"} 1.0',
        'edge_events_total{camera="cam1",type="track"} 1.0',
        "edge_outbox_depth 1.0",
        "edge_outbox_oldest_age_seconds",
        "edge_outbox_dropped_total 0.0",
        "edge_mqtt_connected 1.0",
        "edge_mqtt_publish_seconds_count 1.0",
        'edge_device_temperature_celsius{type="cpu-thermal",zone="thermal_zone0"} 48.312',
        "edge_build_info{",
    ):
        assert needle in text, needle


def test_healthz_answers(live: tuple[Metrics, MetricsServer]) -> None:
    _, srv = live
    code, body, ctype = get(srv, "/healthz")
    assert code == 200 and ctype == "application/json"
    assert json.loads(body) == {"ok": True, "cameras": {"cam1": True}}
    assert get(srv, "/nope")[0] == 404


def test_healthz_503_when_unhealthy() -> None:
    m = Metrics()
    srv = MetricsServer(m, "127.0.0.1", 0, health=lambda: {"ok": False}).start()
    try:
        assert get(srv, "/healthz")[0] == 503
    finally:
        srv.stop()


def test_temperatures_absent_is_empty(tmp_path: Path) -> None:
    assert read_temperatures(tmp_path / "none") == []
