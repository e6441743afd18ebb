"""Prometheus metrics: live /metrics passes promtool, /healthz answers, duck-typed stats."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
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


def _closed_by_server(sock: socket.socket) -> bool:
    """True if the server closed ``sock`` (EOF or reset); False if it is still open."""
    sock.settimeout(0.2)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def test_idle_connections_hold_no_threads_and_time_out() -> None:
    """300 idle sockets (a port scan, stuck scrapers): the thread count stays bounded, /metrics
    still answers at once, and every idle socket is closed (the oldest to make room, the rest
    after the timeout)."""
    timeout, workers = 1.5, 4
    srv = MetricsServer(Metrics(), "127.0.0.1", 0, timeout=timeout, workers=workers, max_idle=64).start()
    before = threading.active_count()
    socks = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(300)]
    try:
        time.sleep(0.3)
        idle_threads = threading.active_count() - before
        t0 = time.monotonic()
        code, body, _ = get(srv, "/metrics")
        took = time.monotonic() - t0
        busy_threads = threading.active_count() - before
        print(f"\n300 idle sockets: +{idle_threads} threads idle, +{busy_threads} scraping; /metrics {took:.3f} s")
        assert code == 200 and b"edge_build_info" in body
        assert took < 1.0
        assert idle_threads <= workers and busy_threads <= workers
        assert not _closed_by_server(socks[-1])  # the newest waits for its request, up to the timeout
        time.sleep(timeout + 0.5)
        still_open = [i for i, s in enumerate(socks) if not _closed_by_server(s)]
        assert still_open == []
        assert get(srv, "/healthz")[0] == 200
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_stalled_request_frees_its_worker() -> None:
    """A client that sends half a request holds a worker for at most the timeout."""
    srv = MetricsServer(Metrics(), "127.0.0.1", 0, timeout=1.0, workers=1).start()
    stalled = socket.create_connection(("127.0.0.1", srv.port))
    try:
        stalled.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # no final blank line
        time.sleep(0.2)
        t0 = time.monotonic()
        assert get(srv, "/metrics")[0] == 200  # queued behind the stalled one, then served
        assert time.monotonic() - t0 < 3.0
        time.sleep(0.2)
        assert _closed_by_server(stalled)
    finally:
        stalled.close()
        srv.stop()
