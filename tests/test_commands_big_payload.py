"""A huge command (64 MB) published on the device's command topic over a real mosquitto: the
device (its own process, so its memory is measured alone) discards it while it arrives instead
of buffering it whole, answers it ``oversized``, stays up and answers the next command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import need_exe
from tests.fixtures.mqtt import Broker, MqttCollector, free_port

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD_MB = 64

# The device: edge.app.run with fake cameras and pipelines, in its own process.
DEVICE = """
import logging, sys
from edge.app import run
from edge.config import load_config
from tests.test_app import FakePipeline, FakeReader
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
sys.exit(run(load_config(sys.argv[1]), camera_factory=lambda n, c: FakeReader(n, None, 0.05),
             pipeline_factory=FakePipeline))
"""


def kib(pid: int, field: str) -> int:
    """A memory figure of a process from /proc (VmRSS: now, VmHWM: peak), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def replies(col: MqttCollector, cid: str, timeout: float) -> list[dict[str, object]]:
    def mine(ms: list[object]) -> list[dict[str, object]]:
        return [r for r in (json.loads(m.payload) for m in ms) if r.get("id") == cid]  # type: ignore[attr-defined]

    return mine(col.wait_for(lambda ms: bool(mine(ms)), timeout))  # type: ignore[arg-type]


def test_a_64_mb_command_is_discarded_unbuffered_and_the_device_keeps_answering(tmp_path: Path, broker: Broker) -> None:
    pub_exe = need_exe("mosquitto_pub")
    cfg = {
        "device_id": "dev1",
        "cameras": {"gate": {"url": "rtsp://cam/gate"}},
        "mqtt": {"host": broker.host, "port": broker.port, "reconnect_min_delay": 1, "reconnect_max_delay": 1},
        "outbox": {"path": str(tmp_path / "state.db")},
        "metrics": {"port": free_port()},
    }
    (tmp_path / "edge.yaml").write_text(yaml.safe_dump(cfg))
    big = tmp_path / "big.json"
    with big.open("wb") as f:  # a well-formed command whose note is 64 MB
        f.write(b'{"id":"big1","cmd":"ack","anomaly":"a1","note":"')
        for _ in range(PAYLOAD_MB):
            f.write(b"x" * (1 << 20))
        f.write(b'"}')
    size = big.stat().st_size
    col = MqttCollector(broker, topic="edge/dev1/cmd/reply", client_id="replies")  # not '#': no 64 MB here
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "device.log").open("w+")
    dev = subprocess.Popen([sys.executable, "-c", DEVICE, str(tmp_path / "edge.yaml")], cwd=ROOT, env=env, stderr=log)

    def send(payload: str | Path, cid: str, timeout: float = 20) -> list[dict[str, object]]:
        src = ["-f", str(payload)] if isinstance(payload, Path) else ["-m", payload]
        subprocess.run(
            [pub_exe, "-h", broker.host, "-p", str(broker.port), "-q", "1", "-t", "edge/dev1/cmd/ops", *src],
            check=True,
            timeout=120,
        )
        return replies(col, cid, timeout)

    try:
        deadline = time.monotonic() + 30
        while True:  # the device answers once it has subscribed
            assert dev.poll() is None and time.monotonic() < deadline, "the device never answered"
            probe = f"p{int(time.monotonic() * 1000)}"
            if send(json.dumps({"id": probe, "cmd": "resolve", "anomaly": "none"}), probe, 1):
                break
        time.sleep(1.0)  # settled
        before = kib(dev.pid, "VmRSS")
        try:
            Path(f"/proc/{dev.pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
        except OSError:
            pass
        got = send(big, "big1", timeout=60)
        assert got[0] == {"id": "big1", "ok": False, "error": f"payload: {size} bytes (max 4096)"}, got
        after = send(json.dumps({"id": "after", "cmd": "resolve", "anomaly": "none"}), "after")
        assert after[0]["ok"] is False and "unknown anomaly" in str(after[0]["error"]), after
        assert dev.poll() is None, "the device died"
        grew_mb = (kib(dev.pid, "VmHWM") - before) / 1024
        print(f"\n{size / 1e6:.0f} MB command: device peak RSS grew {grew_mb:.1f} MB (was {before / 1024:.0f} MB)")
        assert grew_mb < PAYLOAD_MB / 8, f"the device buffered the payload: peak RSS +{grew_mb:.0f} MB"
    finally:
        dev.send_signal(signal.SIGTERM)
        try:
            dev.wait(30)
        except subprocess.TimeoutExpired:
            dev.kill()
            dev.wait()
        col.close()
        log.seek(0)
        text = log.read()
        log.close()
    assert dev.returncode == 0, text[-3000:]
    counts = next(ln for ln in text.splitlines() if "commands: " in ln)
    assert "oversized=1" in counts, counts  # counted like any refused command
