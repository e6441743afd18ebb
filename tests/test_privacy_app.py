"""Snapshots leaving ``edge run`` through the real MQTT sink (mosquitto): decoded on the
subscriber's side, no unmasked person pixel; with a broken segmentation model no picture
leaves, and ``/metrics`` and ``/healthz`` say so."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.app import run
from edge.config import AppConfig, CameraConfig
from edge.events.schema import Event, utc_iso
from edge.privacy import quality as Q
from edge.privacy.ops import FILL
from edge.types import Frame
from tests.conftest import SHARED_MODELS
from tests.fixtures.mqtt import Broker, MqttCollector
from tests.test_app import FakeReader, config
from tests.test_privacy import EMPTY, WALKING, frames

N_FRAMES = 40


class StillReader(FakeReader):
    """Yields one picture ``N_FRAMES`` times, paced, until stopped."""

    def __init__(self, image: np.ndarray) -> None:
        super().__init__("cam", N_FRAMES, 0.05)
        self.image = image

    def __iter__(self) -> Any:
        for frame in super().__iter__():
            yield Frame("cam", frame.index, time.time(), self.image)


def pipeline_with_box(box: list[float]) -> Any:
    """A pipeline factory whose pipeline reports one vehicle track at ``box`` (start, updates)."""

    class BoxPipeline:
        def __init__(self, camera: str, cfg: CameraConfig, app: AppConfig) -> None:
            self.camera, self.device = camera, app.device_id

        def _ev(self, phase: str, ts: float) -> Event:
            return Event(
                device=self.device, camera=self.camera, type="track", phase=phase, ts=utc_iso(ts), track=1,
                label="car", score=0.9, box=box,
            )  # fmt: skip

        def process(self, frame: Frame) -> list[Event]:
            return [self._ev("start" if frame.index == 0 else "update", frame.capture_time)]

        def close(self, now: float) -> list[Event]:
            return [self._ev("end", now)]

    return BoxPipeline


def scene() -> tuple[np.ndarray, np.ndarray, list[float], np.ndarray]:
    """The frame with a man walking in, his reference mask, a snapshot box around him with room
    on each side (the kind of crop a car next to a passer-by gives), and the empty room."""
    f = frames([*EMPTY, WALKING])
    room = Q.background([f[i] for i in EMPTY])
    image, ref = f[WALKING], Q.reference_mask(f[WALKING], room)
    x0, y0, x1, y1 = Q.reference_box(ref) or (0, 0, 1, 1)
    h, w = ref.shape
    box = [max(0, x0 - 60) / w, max(0, y0 - 30) / h, min(w, x1 + 60) / w, min(h, y1 + 30) / h]
    return image, ref, box, room


def run_app(tmp_path: Path, broker: Broker, image: np.ndarray, box: list[float], **extra: Any) -> Any:
    """Start ``edge run`` (one camera showing ``image``, snapshots on); returns (config, stop, thread)."""
    mqtt = {"host": broker.host, "port": broker.port, "snapshots": True}
    cfg = config(tmp_path, {"cam": "rtsp://cam/stream"}, mqtt=mqtt, **extra)
    stop = threading.Event()
    th = threading.Thread(
        target=run,
        args=(cfg, stop),
        kwargs={"camera_factory": lambda n, c: StillReader(image), "pipeline_factory": pipeline_with_box(box)},
    )
    th.start()
    return cfg, stop, th


def test_a_sent_snapshot_has_no_unmasked_person_pixel(
    tmp_path: Path, broker: Broker, mqtt_collector: MqttCollector, model_env: Path
) -> None:
    image, ref, box, room = scene()
    cams = {"cam": {"url": "rtsp://cam/stream", "privacy": {"people": "fill"}}}
    _, stop, th = run_app(tmp_path, broker, image, box, cameras=cams)
    try:
        got = mqtt_collector.wait_for(lambda ms: any("/snapshot/" in m.topic for m in ms), 60)
    finally:
        stop.set()
        th.join(30)
    snaps = [m for m in got if "/snapshot/" in m.topic]
    assert len(snaps) == 1, [m.topic for m in got]
    sent = cv2.imdecode(np.frombuffer(snaps[0].payload, np.uint8), cv2.IMREAD_COLOR)
    # the reference mask, the frame and the empty room, cropped and scaled as the snapshot was
    h, w = ref.shape
    x0, y0, x1, y1 = int(box[0] * w), int(box[1] * h), int(box[2] * w) + 1, int(box[3] * h) + 1
    size = sent.shape[1::-1]
    person = cv2.resize(ref[y0:y1, x0:x1].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    person = cv2.erode(person, np.ones((5, 5), np.uint8)) > 0  # the outline band: JPEG and scaling smear it
    assert person.sum() > 3000, "the snapshot shows the walking man"
    # background subtraction also counts his shadow on the floor at his feet, and bare floor where
    # the table's foot stood before he took hold of it: not him (Q.shadows), so not counted
    shadow = cv2.resize(Q.shadows(image, room)[y0:y1, x0:x1].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    body = person & ~(cv2.dilate(shadow, np.ones((3, 3), np.uint8)) > 0)
    assert body.sum() > 0.95 * person.sum(), "the shadows are a small part of the reference"
    unmasked = body & (np.abs(sent.astype(int) - np.array(FILL)).max(axis=2) > 40)  # JPEG keeps a flat fill
    # not one pixel of him is sent unmasked, his swinging hand and feet included (it was 3% of him)
    assert not unmasked.any(), f"{unmasked.sum()} of {body.sum()} person pixels are sent unmasked"
    original = cv2.resize(image[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    away = ~(cv2.dilate(person.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0)
    kept = np.abs(sent.astype(int) - original.astype(int)).max(axis=2)[away] < 40
    assert kept.mean() > 0.95, "the rest of the picture is sent as it is"


def broken_mirror(tmp_path: Path) -> Path:
    """The shared model mirror with a corrupt segmentation model (random bytes, right size)."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for folder in SHARED_MODELS.iterdir():
        if folder.is_dir() and folder.name != "mediapipe-selfie-segmentation":
            (mirror / folder.name).symlink_to(folder)
    seg = mirror / "mediapipe-selfie-segmentation"
    seg.mkdir()
    src = SHARED_MODELS / "mediapipe-selfie-segmentation"
    (seg / "LICENSE").write_bytes((src / "LICENSE").read_bytes())
    size = (src / "selfie_segmentation.tflite").stat().st_size
    (seg / "selfie_segmentation.tflite").write_bytes(np.random.default_rng(1).bytes(size))
    return mirror


def http(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_a_broken_segmentation_model_lets_no_picture_out(
    tmp_path: Path, broker: Broker, mqtt_collector: MqttCollector, model_env: Path
) -> None:
    image, _, box, _ = scene()
    models = {"cache_dir": str(tmp_path / "cache"), "mirror": str(broken_mirror(tmp_path))}
    cfg, stop, th = run_app(tmp_path, broker, image, box, models=models)
    port = cfg.metrics.port
    try:
        mqtt_collector.wait_for(lambda ms: sum("/events/track" in m.topic for m in ms) >= 5, 60)
        deadline = time.monotonic() + 30
        status, body = http(f"http://127.0.0.1:{port}/healthz")
        while "privacy" not in body or not json.loads(body)["privacy"]["withheld"]:
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
            status, body = http(f"http://127.0.0.1:{port}/healthz")
        _, metrics = http(f"http://127.0.0.1:{port}/metrics")
    finally:
        stop.set()
        th.join(30)
    assert not [m.topic for m in mqtt_collector.messages if "/snapshot/" in m.topic]  # no picture left
    assert sum("/events/track" in m.topic for m in mqtt_collector.messages) >= 5  # events still flow
    health = json.loads(body)
    assert status == 503 and health["ok"] is False
    why = " ".join(health["problems"])
    assert "privacy: camera cam: pictures withheld" in why and "segmentation model" in why and "sha256" in why
    assert 'edge_privacy_withheld_total{camera="cam",reason="model"} 1.0' in metrics
