"""The appliance watchdog, each case in a real subprocess (it ends the process it runs in)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.watchdog import EXIT_WATCHDOG, Watchdog
from tests.conftest import ROOT

CHILD = r"""
import ctypes, logging, sys, time
from pathlib import Path
from edge.app import run
from tests.test_app import FakePipeline, FakeReader, config

logging.basicConfig(level=logging.INFO)
tmp, mode = Path(sys.argv[1]), sys.argv[2]
cfg = config(tmp, {"cam": "rtsp://cam/stream"},
             watchdog={"startup_timeout": 2, "stuck_timeout": 2, "shutdown_timeout": 2})


def hang(seconds=3600):
    if mode.endswith("-gil"):  # a native call that never returns and holds the GIL
        ctypes.PyDLL(None).sleep(seconds)
    time.sleep(seconds)  # one that releases it


class Pipeline(FakePipeline):
    def __init__(self, *a):
        if mode.startswith("startup"):
            hang()
        super().__init__(*a)

    def process(self, frame):
        if mode == "stuck" and frame.index == 5:
            hang()
        return super().process(frame)

    def close(self, now):
        if mode == "shutdown":
            hang()
        return super().close(now)


class Reader(FakeReader):
    # like a real reader: frames keep arriving on its own thread while the camera is busy

    def start(self):
        import threading

        super().start()

        def pump():
            while not self._stop.is_set():
                self.stats.last_frame_time = time.time()
                time.sleep(0.05)

        threading.Thread(target=pump, daemon=True).start()


print("starting", flush=True)
sys.exit(run(cfg, camera_factory=lambda n, c: Reader(n, None, 0.05), pipeline_factory=Pipeline, watchdog=True))
"""


def _child(tmp_path: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), mode],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], within: float) -> tuple[int, str, float]:
    t0 = time.monotonic()
    try:
        _, err = proc.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the process did not end within {within} s:\n{err[-3000:]}")
    return proc.returncode, err, time.monotonic() - t0


def test_stuck_startup_ends_the_process_non_zero(tmp_path: Path) -> None:
    """A start-up that hangs (here: a camera's pipeline never gets built) ends the process
    with exit 70 after ``startup_timeout`` (2 s), logging the stuck thread's stack."""
    t0 = time.monotonic()
    rc, err, _ = _finish(_child(tmp_path, "startup"), within=30)
    assert rc == EXIT_WATCHDOG, err[-3000:]
    assert time.monotonic() - t0 < 15
    assert "start-up did not finish within 2 s" in err
    assert "in hang" in err and "in __init__" in err  # faulthandler's dump of every thread


def test_startup_hung_holding_the_gil_ends_the_process(tmp_path: Path) -> None:
    """The OpenVINO case: a native call that never returns *and holds the GIL* stops every
    Python thread, the watchdog's too; the GIL-free faulthandler timer still ends it (exit 1)."""
    t0 = time.monotonic()
    rc, err, _ = _finish(_child(tmp_path, "startup-gil"), within=40)
    assert rc != 0, err[-3000:]
    assert time.monotonic() - t0 < 25  # startup_timeout 2 + 5 s native grace + interpreter start
    assert "Timeout" in err and "in hang" in err  # faulthandler: "Timeout (0:00:07)!" + stacks


def test_camera_stuck_in_a_call_ends_the_process(tmp_path: Path) -> None:
    rc, err, _ = _finish(_child(tmp_path, "stuck"), within=40)
    assert rc == EXIT_WATCHDOG, err[-3000:]
    assert "camera cam stuck" in err
    assert "stack of thread edge-camera-cam" in err


def test_sigterm_ends_a_hung_shutdown_in_bounded_time(tmp_path: Path) -> None:
    proc = _child(tmp_path, "shutdown")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "starting"
        deadline = time.monotonic() + 20
        events = tmp_path / "events.jsonl"
        while time.monotonic() < deadline and not (events.exists() and len(events.read_text().splitlines()) > 3):
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        rc, err, took = _finish(proc, within=30)
    finally:
        proc.kill()
    assert rc == EXIT_WATCHDOG, err[-3000:]
    assert "shutdown did not finish within 2 s" in err
    assert took < 10


def test_healthy_run_is_not_ended() -> None:
    """In process, with the exit replaced: start-up done in time and no failing check -> no fire."""
    fired: list[int] = []
    dog = Watchdog(1.0, 1.0, 1.0, exit=fired.append, native=False).start()
    dog.add_check(lambda: None)
    dog.startup_done()
    time.sleep(1.6)
    dog.stop()
    assert fired == []
    dog2 = Watchdog(0.3, 1.0, 1.0, exit=fired.append, native=False).start()
    time.sleep(1.2)
    dog2.stop()
    assert fired == [EXIT_WATCHDOG]
