"""Prometheus metrics: live /metrics passes promtool, /healthz answers, duck-typed stats."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.app import run
from edge.config import AppConfig, CameraConfig, parse_config
from edge.events.outbox import Outbox
from edge.metrics import HealthCheck, Metrics, MetricsServer, read_temperatures
from edge.pipeline import PipelineStats
from edge.sources import ReaderStats
from tests.conftest import need_exe
from tests.fixtures.mqtt import Broker, free_port
from tests.test_app import FakePipeline as AppFakePipeline
from tests.test_app import FakeReader as AppFakeReader


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
        "edge_outbox_disk_bytes ",
        'edge_outbox_dropped_total{reason="budget"} 0.0',
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


def test_stop_does_not_wait_for_a_stalled_client() -> None:
    """Stopping the endpoint frees a worker stuck on a silent client at once."""
    srv = MetricsServer(Metrics(), "127.0.0.1", 0, timeout=30.0, workers=1).start()
    stalled = socket.create_connection(("127.0.0.1", srv.port))
    try:
        stalled.sendall(b"GET /metrics HTTP/1.1\r\n")
        time.sleep(0.3)

        def workers() -> list[threading.Thread]:
            return [t for t in threading.enumerate() if t.name.startswith("edge-metrics-http")]

        assert len(workers()) == 1  # busy with the stalled client
        t0 = time.monotonic()
        srv.stop()
        for t in workers():
            t.join(5)
        assert workers() == [] and time.monotonic() - t0 < 5
        assert _closed_by_server(stalled)
    finally:
        stalled.close()


def _wait_health(port: int, want: int, until: Callable[[dict], bool] = lambda b: True, timeout: float = 20.0) -> dict:
    """Poll /healthz until it answers ``want`` with a body that satisfies ``until``; returns that
    body (fails with the last one)."""
    deadline = time.monotonic() + timeout
    code, body = 0, b"{}"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                code, body = r.status, r.read()
        except urllib.error.HTTPError as err:
            code, body = err.code, err.read()
        except OSError:
            code = 0
        if code == want and until(json.loads(body)):
            return json.loads(body)
        time.sleep(0.1)
    raise AssertionError(f"/healthz stayed {code}, not {want}: {body!r}")


def test_healthz_reports_components_and_fails_when_the_job_is_not_done(tmp_path: Path, broker: Broker) -> None:
    """A real ``edge.app.run`` with a fake camera and a real mosquitto stopped and started:
    503 when the broker is gone with a backlog older than the limit and when no camera is up
    for longer than the grace period; 200 again once each comes back."""
    grace, max_age = 2.0, 2.0
    cfg = parse_config(
        {
            "device_id": "dev1",
            "cameras": {"cam": {"url": "rtsp://cam/stream", "reconnect": {"initial_delay": 0.2, "max_delay": 0.5}}},
            "outbox": {"path": str(tmp_path / "state.db")},
            "metrics": {"port": free_port()},
            "mqtt": {"host": broker.host, "port": broker.port, "reconnect_min_delay": 1, "reconnect_max_delay": 30},
        }
    )
    # The two limits are read with getattr (config fields pending); set them on a copy.
    metrics_cfg = cfg.metrics.model_copy(update={"health_camera_grace": grace, "health_backlog_max_age": max_age})
    cfg = cfg.model_copy(update={"metrics": metrics_cfg})
    camera_down = threading.Event()
    readers: list[AppFakeReader] = []

    def camera_factory(name: str, c: CameraConfig) -> AppFakeReader:
        if camera_down.is_set():
            raise OSError("camera unreachable")
        readers.append(AppFakeReader(name, None, 0.05))
        return readers[-1]

    def pipeline_factory(name: str, c: CameraConfig, app: AppConfig) -> AppFakePipeline:
        return AppFakePipeline(name, c, app)

    stop = threading.Event()
    th = threading.Thread(
        target=run, args=(cfg, stop), kwargs={"camera_factory": camera_factory, "pipeline_factory": pipeline_factory}
    )
    th.start()
    port = cfg.metrics.port
    try:
        body = _wait_health(port, 200, lambda b: b["cameras"] == {"cam": True} and b["mqtt"]["connected"])
        assert body["device"] == "dev1" and body["problems"] == []
        assert body["outbox"]["depth"] >= 0 and "dropped" in body["outbox"]

        broker.stop()  # events keep coming and wait in the outbox
        body = _wait_health(port, 503)
        assert body["mqtt"]["connected"] is False and body["outbox"]["depth"] > 0
        assert body["outbox"]["oldest_age"] >= max_age
        assert any("MQTT broker disconnected" in p for p in body["problems"]), body
        assert body["cameras"] == {"cam": True}  # per component: the camera is fine
        broker.start()
        body = _wait_health(port, 200)
        assert body["mqtt"]["connected"] is True and body["problems"] == []

        camera_down.set()
        readers[-1].stop()  # the stream ends; restarts fail while the camera is "down"
        t_down = time.monotonic()
        body = _wait_health(port, 503)
        assert time.monotonic() - t_down >= grace * 0.9  # not before the grace period
        assert body["cameras"] == {"cam": False} and body["cameras_up"] == 0
        assert any("no camera up" in p for p in body["problems"]), body
        camera_down.clear()
        body = _wait_health(port, 200)
        assert body["cameras"] == {"cam": True} and body["problems"] == []
    finally:
        stop.set()
        th.join(30)


def test_health_rule_thresholds() -> None:
    """The documented rule, step by step on a fake clock (real Outbox stats)."""
    now = [0.0]
    check = HealthCheck(camera_grace=60, backlog_max_age=300, clock=lambda: now[0])

    class Pub:
        connected, last_error = False, "connection refused (broker not running, or wrong mqtt.port)"

    class Box:
        def __init__(self, depth: int, age: float) -> None:
            self.depth, self.age = depth, age

        def stats(self) -> object:
            from edge.events.outbox import OutboxStats

            return OutboxStats(self.depth, 0, 1, time.time() - self.age if self.depth else None, 0)

    assert check({"a": False}, Pub(), Box(0, 0))["ok"]  # start-up: within the grace period
    now[0] = 61
    assert not check({"a": False, "b": False}, None, None)["ok"]
    assert check({"a": False, "b": True}, None, None)["ok"]  # one camera is enough
    now[0] = 100
    assert check({"a": False}, None, None)["ok"]  # seen up 39 s ago
    assert check({"a": True}, Pub(), Box(0, 0))["ok"]  # broker down, nothing waiting
    assert check({"a": True}, Pub(), Box(5, 299))["ok"]  # young backlog: a broker restart
    body = check({"a": True}, Pub(), Box(5, 301))
    assert not body["ok"] and "connection refused" in body["problems"][0]
    Pub.connected = True
    assert check({"a": True}, Pub(), Box(5, 3000))["ok"]  # connected and draining an old backlog
    assert not check({"a": True}, Pub(), Box(0, 0), shutting_down=True)["ok"]
