"""systemd integration: sd_notify over a real unix datagram socket, the frame-gated watchdog in
``edge.app.run`` (fake cameras as in test_app.py), and ``systemd-analyze verify`` of the unit."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.app import run
from edge.config import parse_config
from edge.systemd import Notifier, SystemdWatchdog, watchdog_interval
from edge.types import Frame
from tests.conftest import ROOT, need_exe
from tests.test_app import FakePipeline, FakeStats

UNIT = ROOT / "deploy" / "edge.service"


class NotifySocket:
    """A bound AF_UNIX datagram socket collecting sd_notify messages with their arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def times(self, line: str) -> list[float]:
        return [t for t, m in self.messages if line in m.splitlines()]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture()
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(tmp_path / "notify.sock")
    yield s
    s.close()


def _wait(pred: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def test_notifier_sends_datagrams(notify_socket: NotifySocket) -> None:
    n = Notifier(notify_socket.path)
    assert n.ready("2 cameras") and n.watchdog() and n.stopping()
    assert _wait(lambda: len(notify_socket.messages) == 3)
    assert [m for _, m in notify_socket.messages] == ["READY=1\nSTATUS=2 cameras", "WATCHDOG=1", "STOPPING=1"]


def test_notifier_abstract_socket() -> None:
    name = f"edge-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        s.settimeout(2)
        assert Notifier("@" + name).ready()
        assert s.recv(100) == b"READY=1"


def test_notifier_without_socket_is_a_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier.from_env()
    assert not n.enabled and not n.ready() and not n.watchdog()


def test_notifier_dead_socket_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier(str(tmp_path / "nobody-listens"))
    assert not n.watchdog() and not n.watchdog()
    assert len([r for r in caplog.records if "systemd notification" in r.message]) == 1


def test_watchdog_interval_from_env() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None  # meant for another process
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None


def test_watchdog_fed_only_while_frames_are_fresh(notify_socket: NotifySocket) -> None:
    now = [100.0]
    wd = SystemdWatchdog(Notifier(notify_socket.path), 10.0, clock=lambda: now[0])
    assert wd.tick(99.0)  # fresh frame: ping
    assert not wd.tick(99.0)  # pings at most every interval/4
    now[0] = 103.0
    assert wd.tick(102.0)
    now[0] = 120.0
    assert not wd.tick(109.0) and wd.starved  # 11 s without a frame: no ping
    assert not wd.tick(None)
    assert wd.tick(119.5) and not wd.starved  # frames again
    assert wd.pings == 3


class SwitchableReader:
    """Frames every 50 ms while ``Camera.up`` is set; blocks (a dead camera) otherwise."""

    up = threading.Event()

    def __init__(self, name: str, _cfg: Any) -> None:
        self.name = name
        self.stats = FakeStats()
        self._stop = threading.Event()

    def start(self) -> None:
        self.stats.connected = True

    def stop(self) -> None:
        self._stop.set()

    def __iter__(self) -> Any:
        i = 0
        while not self._stop.is_set():
            if self.up.is_set():
                i += 1
                self.stats.frames_read += 1
                yield Frame(self.name, i, time.time(), np.zeros((16, 16, 3), np.uint8))
            self._stop.wait(0.05)


def test_app_feeds_watchdog_only_while_frames_flow(
    tmp_path: Path, notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """READY after start, WATCHDOG=1 while frames flow, none once every camera is down for longer
    than WatchdogSec, again when frames return, STOPPING=1 on shutdown."""
    interval = 0.6
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.path)
    monkeypatch.setenv("WATCHDOG_USEC", str(int(interval * 1e6)))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    cfg = parse_config(
        {
            "cameras": {"a": {"url": "rtsp://192.0.2.1/a"}, "b": {"url": "rtsp://192.0.2.1/b"}},
            "metrics": {"enabled": False},
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        }
    )
    SwitchableReader.up.set()
    stop = threading.Event()
    result: list[int] = []
    t = threading.Thread(
        target=lambda: result.append(
            run(cfg, stop, camera_factory=SwitchableReader, pipeline_factory=FakePipeline)  # type: ignore[arg-type]
        )
    )
    t.start()
    try:
        assert _wait(lambda: notify_socket.times("READY=1"), 10), notify_socket.messages
        time.sleep(1.5)  # frames flowing
        flowing = len(notify_socket.times("WATCHDOG=1"))
        assert flowing >= 3, notify_socket.messages

        SwitchableReader.up.clear()  # every camera down
        down_at = time.monotonic()
        time.sleep(interval * 3)
        late = [x for x in notify_socket.times("WATCHDOG=1") if x > down_at + interval + 0.25]
        assert late == [], f"watchdog fed {len(late)} times with every camera down"
        assert any("STATUS=no frames from any camera" in m for _, m in notify_socket.messages)

        SwitchableReader.up.set()  # back: fed again
        back_at = time.monotonic()
        assert _wait(lambda: [x for x in notify_socket.times("WATCHDOG=1") if x > back_at], 3)
    finally:
        stop.set()
        t.join(20)
        SwitchableReader.up.clear()
    assert result == [0]
    assert _wait(lambda: notify_socket.times("STOPPING=1"))
    assert notify_socket.times("STOPPING=1")[0] > notify_socket.times("READY=1")[0]


def test_app_without_notify_socket_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    cfg = parse_config(
        {
            "cameras": {"a": {"url": "rtsp://192.0.2.1/a"}},
            "metrics": {"enabled": False},
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        }
    )
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    assert run(cfg, stop, camera_factory=SwitchableReader, pipeline_factory=FakePipeline) == 0  # type: ignore[arg-type]


def _unit_text() -> str:
    return UNIT.read_text(encoding="utf-8")


def test_unit_has_the_required_settings() -> None:
    lines = {ln.split("=", 1)[0]: ln.split("=", 1)[1] for ln in _unit_text().splitlines() if "=" in ln and ln[0] != "#"}
    assert lines["Type"] == "notify"
    assert lines["Restart"] == "always"
    assert lines["User"] == "edge"
    assert lines["StateDirectory"] == "edge"
    assert lines["ProtectSystem"] == "strict"
    assert lines["NoNewPrivileges"] == "yes"
    assert int(lines["WatchdogSec"]) >= 10
    assert "edge run --config /etc/edge/edge.yaml" in lines["ExecStart"]


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = need_exe("systemd-analyze")
    # verify checks that ExecStart's program exists: point it at a stub instead of /opt/edge/venv
    stub = tmp_path / "edge"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    unit = tmp_path / "edge.service"
    unit.write_text(_unit_text().replace("/opt/edge/venv/bin/edge", str(stub)))
    res = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr
    sec = subprocess.run([analyze, "security", "--offline=yes", str(unit)], capture_output=True, text=True, timeout=60)
    if sec.returncode == 0:  # hardening score (lower is better; 'OK' band is < 4.5 on systemd 252)
        score = float(sec.stdout.rsplit("edge.service:", 1)[1].split()[0])
        assert score < 4.5, sec.stdout[-300:]


def test_ready_waits_until_every_camera_loaded_its_models(
    tmp_path: Path, notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow model loading (a TensorRT engine build) happens before READY=1, so the watchdog is not
    armed while it runs."""
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.path)
    monkeypatch.setenv("WATCHDOG_USEC", "300000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))

    def slow_pipeline(*args: Any) -> FakePipeline:
        time.sleep(1.0)
        return FakePipeline(*args)

    cfg = parse_config(
        {
            "cameras": {"a": {"url": "rtsp://192.0.2.1/a"}},
            "metrics": {"enabled": False},
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        }
    )
    SwitchableReader.up.set()
    stop = threading.Event()
    started = time.monotonic()
    t = threading.Thread(
        target=run, args=(cfg, stop), kwargs={"camera_factory": SwitchableReader, "pipeline_factory": slow_pipeline}
    )
    t.start()
    try:
        assert _wait(lambda: notify_socket.times("READY=1"), 10)
        ready_at = notify_socket.times("READY=1")[0]
        assert ready_at - started >= 1.0
        assert all(x >= ready_at for x in notify_socket.times("WATCHDOG=1"))
        assert _wait(lambda: notify_socket.times("WATCHDOG=1"), 3)
    finally:
        stop.set()
        t.join(20)
        SwitchableReader.up.clear()
