"""``edge run``'s wiring: the :class:`edge.app.App` life cycle, collaborators handed to a camera
worker at construction, processors fixed when the event bus is built (fake cameras and
pipelines as in test_app.py; a real bus, sinks, metrics server and signal handlers)."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from edge.app import App, CameraWorker, build_bus
from edge.config import AppConfig, CameraConfig
from edge.events.bus import Emitter
from edge.events.schema import Event, Sequencer, utc_iso
from edge.events.sinks import Sink
from edge.metrics import Metrics
from tests.test_app import FakePipeline, FakeReader, config, jsonl


class ListSink(Sink):
    """Keeps every delivered event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)


def _wait(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_a_camera_waits_for_the_models_it_was_given(tmp_path: Path) -> None:
    """``models_ready`` comes in with the worker: the camera connects at once but builds no
    pipeline and sends no event until the models are loaded."""
    cfg = config(tmp_path, {"cam": "rtsp://cam/stream"})
    sink, stop, models_ready = ListSink(), threading.Event(), threading.Event()
    bus = build_bus(cfg.device_id, [sink], Sequencer())
    built: list[str] = []
    reader = FakeReader("cam", None, 0.01)

    def pipeline_factory(name: str, cam: CameraConfig, app: AppConfig) -> FakePipeline:
        built.append(name)
        return FakePipeline(name, cam, app)

    worker = CameraWorker(
        "cam",
        cfg.cameras["cam"],
        cfg,
        bus,
        Metrics(cfg.device_id),
        stop,
        lambda n, c: reader,
        pipeline_factory,
        models_ready=models_ready,
    )
    worker.start()
    try:
        assert _wait(lambda: reader.stats.connected)
        time.sleep(0.5)
        assert built == [] and sink.events == []
        models_ready.set()
        assert _wait(lambda: len(sink.events) >= 3)
        assert built == ["cam"]
    finally:
        stop.set()
        worker.stop_reader()
        worker.thread.join(10)
    assert sink.events[-1].phase == "end"  # the open track closed on the way out


class Acker:
    """A processor that answers every anomaly with an ``ack`` event through the bus it was built
    with (as the MQTT command handler does)."""

    def __init__(self, bus: Emitter) -> None:
        self.bus = bus

    def process(self, event: Event) -> list[Event]:
        if event.type == "anomaly" and event.phase == "start":
            self.bus.emit(event.model_copy(update={"phase": "ack", "seq": None}))
        return []

    def tick(self, now: float) -> list[Event]:
        return []


def test_a_processor_emits_into_the_bus_it_was_built_with() -> None:
    sink = ListSink()
    bus = build_bus("dev1", [sink], Sequencer(), emitting=[Acker])
    assert [type(p) for p in bus.processors] == [Acker]
    bus.emit(Event(device="", camera="cam", type="anomaly", phase="start", ts=utc_iso(1_795_000_000.0)))
    bus.close()
    assert [(e.phase, e.seq) for e in sink.events] == [("start", 0), ("ack", 1)]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_app_starts_every_subsystem_and_stops_them_all(tmp_path: Path) -> None:
    """``App.start()`` brings up the metrics endpoint, the signal handlers and the cameras;
    ``App.stop()`` closes the open tracks into the outputs, stops serving and gives the
    signals back - whatever ran before is as it was."""
    cfg = config(tmp_path, {"a": "rtsp://cam/a", "b": "rtsp://cam/b"})
    before = signal.getsignal(signal.SIGTERM)
    app = App(
        cfg,
        camera_factory=lambda n, c: FakeReader(n, None, 0.01),
        pipeline_factory=FakePipeline,
    )
    try:
        app.start()
        assert signal.getsignal(signal.SIGTERM) == app.on_signal
        assert _wait(lambda: (tmp_path / "events.jsonl").exists() and len(jsonl(tmp_path)) >= 4)
        with urllib.request.urlopen(f"http://127.0.0.1:{cfg.metrics.port}/healthz", timeout=5) as resp:
            health = json.loads(resp.read())
        assert health["device"] == "dev1" and set(health["cameras"]) == {"a", "b"}
    finally:
        app.stop()
    assert app.exit_code() == 0
    assert signal.getsignal(signal.SIGTERM) == before
    assert not _port_open(cfg.metrics.port)
    ends = {e["camera"] for e in jsonl(tmp_path) if e["phase"] == "end"}
    assert ends == {"a", "b"}
