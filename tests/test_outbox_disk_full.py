"""A full disk under the outbox (a real 2 MB tmpfs, filled to the last byte): no event is lost
silently, /healthz turns red with the reason, the log gets a line (not a traceback per event),
the newest events wait in memory and reach the disk and the broker once there is room again.

The delivery is built as ``edge run`` builds it (``build_delivery``: event bus, durable outbox,
MQTT publisher, persistent sequence numbers in the outbox file) with the feedback recorder (the
command handler's event index, on the same disk) and the real ``/healthz`` and ``/metrics``
endpoint; the broker is a real mosquitto.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.app import build_delivery
from edge.commands import CommandHandler
from edge.config import AppConfig, parse_config
from edge.events.mqtt import MqttPublisher
from edge.events.outbox import Outbox
from edge.feedback.store import FeedbackStore, default_db_path
from edge.metrics import HealthCheck, Metrics, MetricsServer
from tests.conftest import need
from tests.fixtures.mqtt import Broker, MqttCollector, free_port, sample_event

DISK_SIZE = "2m"
MEMORY_MAX = 64 * 1024  # outbox.memory_max_bytes: ~160 sample events
DISK_LOGGERS = ("edge.events.outbox", "edge.feedback", "edge.commands", "edge.events.sinks", "edge.events.bus")


def _mount_small_disk(mnt: Path, image: Path) -> str | None:
    """Mount a 2 MB filesystem at ``mnt``: tmpfs, else an ext4 image on a loop device. None on
    success, else why neither worked."""
    tmpfs = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if tmpfs.returncode == 0:
        return None
    subprocess.run(["truncate", "-s", DISK_SIZE.upper(), str(image)], check=True)
    loop = subprocess.run(
        f"mkfs.ext4 -q -F {image} && mount -o loop {image} {mnt}", shell=True, capture_output=True, text=True
    )
    if loop.returncode == 0:
        return None
    return f"tmpfs: {tmpfs.stderr.strip()}; loop ext4: {loop.stderr.strip()}"


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A freshly mounted 2 MB filesystem (needs mount rights: root or CAP_SYS_ADMIN)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    why = _mount_small_disk(mnt, tmp_path / "disk.img")
    need(why is None, f"a 2 MB filesystem to fill ({why})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(disk: Path) -> Path:
    """Write a file until the filesystem says ENOSPC; returns it (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as err:
                assert err.errno == 28, err  # ENOSPC
    finally:
        os.close(fd)
    return filler


def device_config(disk: Path, broker: Broker) -> AppConfig:
    """A device whose outbox (and so its feedback store) lives on ``disk``."""
    return parse_config(
        {
            "device_id": "edge-1",
            "cameras": {"cam1": {"url": "rtsp://cam/1"}},
            "outbox": {"path": str(disk / "state.db"), "max_bytes": 1024 * 1024, "memory_max_bytes": MEMORY_MAX},
            "mqtt": {
                "host": broker.host,
                "port": broker.port,
                "client_id": "edge-disk-full",
                "reconnect_min_delay": 1,
                "reconnect_max_delay": 1,
            },
            "metrics": {"port": free_port()},
        }
    )


class Device:
    """The delivery side of ``edge run``: bus, outbox, publisher, feedback recorder, endpoints."""

    def __init__(self, cfg: AppConfig) -> None:
        self.metrics = Metrics("edge-1")
        self.bus, pub = build_delivery(cfg, self.metrics)
        assert pub is not None
        self.pub: MqttPublisher = pub
        self.outbox: Outbox = pub.outbox
        self.feedback = FeedbackStore(default_db_path(cfg), cfg.commands.recent_events, cfg.commands.snapshots)
        commands = CommandHandler(cfg.commands, pub.topics, lambda topic, payload: None, self.feedback)
        self.bus.processors.append(commands)  # as edge run does: records events for feedback look-ups
        check = HealthCheck()
        self.server = MetricsServer(
            self.metrics, port=0, health=lambda: check({"cam1": True}, self.pub, self.outbox)
        ).start()

    def emit(self, i: int) -> None:
        self.bus.emit(sample_event("cam1", i))

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.server.port}{path}", timeout=5) as r:
                code, body = r.status, r.read()
        except urllib.error.HTTPError as err:
            code, body = err.code, err.read()
        return code, json.loads(body) if path == "/healthz" else body.decode()

    def close(self) -> None:
        self.bus.close()
        self.feedback.close()
        self.server.stop()


def wait_until(cond: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def seqs_on_disk(path: Path) -> list[int]:
    """Sequence numbers of the events stored in the outbox file, in send (id) order, read with
    a connection of its own (what a restarted process would send)."""
    db = sqlite3.connect(str(path))
    try:
        rows = db.execute("SELECT payload FROM outbox ORDER BY id").fetchall()
    finally:
        db.close()
    return [json.loads(r[0])["seq"] for r in rows]


def disk_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(DISK_LOGGERS) and r.levelno >= logging.WARNING]


def test_full_disk_counts_every_event_turns_health_red_and_delivers_after(
    small_disk: Path, make_broker: Callable[..., Broker], caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker().start()
    collector = MqttCollector(broker)  # persistent session: the broker queues events for it while it is away
    broker.stop()  # the broker is down for the whole disk-full phase
    device = Device(device_config(small_disk, broker))
    try:
        device.pub.start()
        caplog.set_level(logging.WARNING)
        pushed = 300
        for i in range(20):  # room on the disk
            device.emit(i)
        filler = fill(small_disk)
        for i in range(20, pushed):
            device.emit(i)

        # what the file holds, what waits to be sent (file, then memory), what was counted lost
        stored = seqs_on_disk(small_disk / "state.db")
        waiting = [json.loads(r.payload)["seq"] for r in device.outbox.fetch_after(0, 1000)]
        in_memory = waiting[len(stored) :]
        st = device.outbox.stats()
        print(f"pushed {pushed}: stored {len(stored)}, in memory {len(in_memory)}, dropped {st.dropped}")
        assert len(stored) + len(in_memory) + st.dropped == pushed  # every event accounted for
        assert stored == list(range(len(stored)))  # the disk holds the first events
        assert in_memory == list(range(pushed - len(in_memory), pushed))  # memory the newest, in order
        assert in_memory and st.dropped > 0 and st.dropped == st.dropped_unwritable
        assert st.memory_depth == len(in_memory) and st.memory_bytes <= MEMORY_MAX

        code, health = device.get("/healthz")
        assert code == 503, health
        problem = next(p for p in health["problems"] if "outbox" in p)
        assert "cannot be written" in problem and "disk full" in problem, problem
        assert health["outbox"]["in_memory"] == st.memory_depth and health["outbox"]["dropped"] == st.dropped
        _, text = device.get("/metrics")
        assert f'edge_outbox_dropped_total{{reason="unwritable"}} {float(st.dropped)}' in text
        assert "edge_outbox_writable 0.0" in text
        assert f"edge_outbox_memory_messages {float(st.memory_depth)}" in text

        lines = disk_records(caplog)
        print("log lines while the disk was full:", [r.getMessage() for r in lines])
        assert not [r for r in lines if r.exc_info], "a traceback was logged"
        assert [r.name for r in lines] in (
            ["edge.feedback", "edge.events.outbox"],
            ["edge.events.outbox", "edge.feedback"],
        )
        assert device.feedback.write_errors > 0

        # room again: the events kept in memory reach the disk, in order, each once
        filler.unlink()
        assert wait_until(lambda: device.outbox.stats().memory_depth == 0 and device.outbox.write_error is None)
        on_disk = seqs_on_disk(small_disk / "state.db")
        assert on_disk == stored + in_memory
        assert len(on_disk) == pushed - st.dropped
        code, health = device.get("/healthz")
        assert code == 200, health
        assert any("can be written again" in r.getMessage() for r in disk_records(caplog))

        # and the broker gets exactly those, in order, once each
        broker.start()
        got = collector.wait_for(lambda ms: len([m for m in ms if "/events/" in m.topic]) >= len(on_disk))
        received = [json.loads(m.payload)["seq"] for m in got if "/events/" in m.topic]
        assert received == on_disk
        assert wait_until(lambda: device.outbox.depth == 0)
    finally:
        device.close()
        collector.close()


def test_full_disk_events_in_memory_are_sent_when_the_broker_is_up(
    small_disk: Path, make_broker: Callable[..., Broker], caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker().start()
    collector = MqttCollector(broker)
    broker.stop()
    device = Device(device_config(small_disk, broker))
    # No retry of the disk in this test: a row can leave memory only as a broker acknowledgement.
    device.outbox.retry_interval = 3600
    try:
        device.pub.start()
        for i in range(10):
            device.emit(i)
        fill(small_disk)
        for i in range(10, 150):
            device.emit(i)
        st = device.outbox.stats()
        assert st.memory_depth > 100 and st.dropped == 0, st
        broker.start()
        got = collector.wait_for(lambda ms: len([m for m in ms if "/events/" in m.topic]) >= 150)
        received = [json.loads(m.payload)["seq"] for m in got if "/events/" in m.topic]
        assert received == list(range(150))  # from disk, then from memory, in order, once each
        assert wait_until(lambda: device.outbox.stats().memory_depth == 0)
        assert device.outbox.stats().dropped == 0
        assert device.outbox.write_error is not None and device.get("/healthz")[0] == 503
        assert not [r for r in disk_records(caplog) if r.exc_info]
    finally:
        device.close()
        collector.close()


def test_health_recovers_without_new_events(small_disk: Path) -> None:
    """Memory emptied by acknowledgements: a probe write finds the disk writable again."""
    outbox = Outbox(small_disk / "o.db", 1024 * 1024, memory_max_bytes=MEMORY_MAX, retry_interval=0.2)
    try:
        filler = fill(small_disk)
        ids = [outbox.put("t", bytes(300)) for _ in range(40)]
        assert outbox.write_error is not None and outbox.stats().memory_depth > 0
        outbox.ack([i for i in ids if i is not None])  # the broker took them
        assert outbox.depth == 0 and outbox.write_error is not None
        filler.unlink()
        assert wait_until(lambda: outbox.write_error is None, timeout=5)
    finally:
        outbox.close()


def test_closing_with_events_in_memory_counts_them_lost(small_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(small_disk / "o.db", 1024 * 1024, memory_max_bytes=MEMORY_MAX)
    outbox.put("t", b"stored")
    fill(small_disk)
    payload = sample_event().to_bytes()
    for _ in range(50):
        outbox.put("edge/edge-1/cam1/events/track", payload)
    st = outbox.stats()
    before = st.dropped
    caplog.set_level(logging.WARNING)
    outbox.close()
    assert outbox.dropped == before + st.memory_depth and outbox.dropped_unwritable == outbox.dropped
    assert (st.depth - st.memory_depth) + outbox.dropped == 51
    assert any("are lost" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
