"""Device settings this machine does not have fall back with one clear warning and frames still
flow: a hardware decoder / hwaccel (real RTSP server + ffmpeg) and ONNX Runtime execution
providers (a real ONNX model), separately and together through ``edge.app.run``."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.config import CameraConfig, parse_config
from edge.errors import SourceError
from edge.sources import ffmpeg as ffmpeg_mod
from edge.sources import open_camera
from edge.sources.url import parse_source
from tests.conftest import need_exe
from tests.fixtures.rtsp import RtspServer, free_port

UNAVAILABLE_GPU = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.fixture(autouse=True)
def _fresh_fallback_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ffmpeg_mod, "_HW_FAILED", set())


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


def _frames(reader: Any, n: int, timeout: float) -> int:
    got, deadline = 0, time.monotonic() + timeout
    while got < n and time.monotonic() < deadline:
        if reader.read(timeout=1.0) is not None:
            got += 1
    return got


@pytest.mark.parametrize(
    "hw",
    [
        {"decoder": "h264_nvv4l2dec"},  # Jetson's decoder: not in Debian's ffmpeg
        {"hwaccel": "vaapi", "hwaccel_device": "/dev/dri/renderD128"},  # no GPU device here
    ],
    ids=["decoder", "hwaccel"],
)
def test_unavailable_hw_decode_falls_back_to_software(
    hw: dict[str, str], rtsp_server: RtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    import os

    if "hwaccel" in hw and os.path.exists(hw["hwaccel_device"]):
        pytest.skip("this machine has a VAAPI device: the fallback is not exercised")
    caplog.set_level(logging.WARNING)
    cfg = CameraConfig.model_validate({"url": rtsp_server.url(), "detect": {"fps": 10}, **hw})
    reader = open_camera("hw", cfg)
    reader.start()
    try:
        assert _frames(reader, 10, 30) == 10
    finally:
        reader.stop()
    warned = _warnings(caplog, "falling back to software decoding")
    assert len(warned) == 1, warned
    assert "hardware decoding" in warned[0] and (hw.get("decoder") or hw["hwaccel"]) in warned[0]


def test_hw_decode_fallback_is_remembered_across_reconnects(
    rtsp_server: RtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    cfg = CameraConfig.model_validate({"url": rtsp_server.url(), "decoder": "h264_nvv4l2dec"})
    for _ in range(2):  # a second connection (as after a reconnect) goes straight to software
        reader = open_camera("hw", cfg)
        reader.start()
        try:
            assert _frames(reader, 3, 30) == 3
        finally:
            reader.stop()
    assert len(_warnings(caplog, "falling back to software decoding")) == 1


def test_camera_down_is_not_blamed_on_the_decoder(caplog: pytest.LogCaptureFixture) -> None:
    ffmpeg = need_exe("ffmpeg")
    cap = ffmpeg_mod.FFmpegCapture(
        parse_source(f"rtsp://127.0.0.1:{free_port()}/none"), ffmpeg=ffmpeg, decode_args=["-c:v", "h264_nvv4l2dec"]
    )
    with pytest.raises(SourceError):
        cap.open(5.0)
    cap.close()
    assert _warnings(caplog, "falling back") == [] and not ffmpeg_mod._HW_FAILED


def test_hw_decode_args() -> None:
    assert ffmpeg_mod.hw_decode_args() == []
    assert ffmpeg_mod.hw_decode_args("vaapi", "/dev/dri/renderD128") == [
        "-hwaccel",
        "vaapi",
        "-hwaccel_device",
        "/dev/dri/renderD128",
    ]
    assert ffmpeg_mod.hw_decode_args(decoder="h264_v4l2m2m") == ["-c:v", "h264_v4l2m2m"]
    src = parse_source("rtsp://127.0.0.1:1/x")
    cmd = ffmpeg_mod.ffmpeg_command("ffmpeg", src, decode_args=["-c:v", "h264_v4l2m2m"])
    assert cmd.index("-c:v") < cmd.index("-i")  # an input option


def test_config_validates_device_fields() -> None:
    from edge.errors import ConfigError

    base = {"cameras": {"a": {"url": "rtsp://192.0.2.1/a"}}}
    for bad in (
        {"runtime": {"providers": ["GPUExecutionProvider"]}},
        {"runtime": {"providers": ["CPUExecutionProvider", "CPUExecutionProvider"]}},
        {"runtime": {"providers": []}},
        {"runtime": {"provider_options": {"CUDAExecutionProvider": {"device_id": 0}}}},  # not listed
        {"cameras": {"a": {"url": "rtsp://192.0.2.1/a", "hwaccel": "magic"}}},
        {"cameras": {"a": {"url": "rtsp://192.0.2.1/a", "decoder": "h264; rm -rf /"}}},
    ):
        with pytest.raises(ConfigError):
            parse_config({**base, **bad})
    ok = parse_config(
        {
            **base,
            "runtime": {"providers": UNAVAILABLE_GPU, "provider_options": {"CUDAExecutionProvider": {"device_id": 0}}},
        }
    )
    assert ok.runtime.providers == UNAVAILABLE_GPU
    assert parse_config(base).runtime.providers == ["CPUExecutionProvider"]


def test_unavailable_providers_fall_back_to_cpu(
    model_env: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    from edge.inference.backends import onnx as onnx_backend
    from edge.registry import ensure_model

    monkeypatch.setattr(onnx_backend, "_warned", set())
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the fallback is not exercised")
    caplog.set_level(logging.WARNING)
    manifest, folder = ensure_model("yolox-nano-coco")
    gpu = onnx_backend.OnnxProviders(tuple(UNAVAILABLE_GPU), {"TensorrtExecutionProvider": {"trt_fp16_enable": True}})
    for _ in range(2):  # two models: still one warning
        b = onnx_backend.OnnxBackend(folder / manifest.entry, threads=1, providers=gpu)
        assert b.providers == ["CPUExecutionProvider"]
        out = b.infer({b.inputs[0].name: np.zeros((1, 3, 416, 416), np.float32)})
        assert next(iter(out.values())).shape == (1, 3549, 85)
    warned = _warnings(caplog, "execution provider")
    assert len(warned) == 1, warned
    assert "TensorrtExecutionProvider, CUDAExecutionProvider" in warned[0] and "CPUExecutionProvider" in warned[0]


def test_app_runs_with_unavailable_decoder_and_providers(
    rtsp_server: RtspServer,
    model_env: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``edge.app.run`` with the Jetson settings on this machine: one warning each, frames reach the
    (real) pipeline, whose ONNX detector runs on CPU."""
    pytest.importorskip("onnxruntime")
    from edge.app import run
    from edge.app.models import make_pool
    from edge.inference.backends import onnx as onnx_backend
    from edge.pipeline import Pipeline

    monkeypatch.setattr(onnx_backend, "_warned", set())
    caplog.set_level(logging.WARNING)
    cfg = parse_config(
        {
            "cameras": {
                "gate": {
                    "url": rtsp_server.url(),
                    "decoder": "h264_nvv4l2dec",
                    "detect": {"fps": 4, "model": "yolox-nano-coco", "attributes_model": None},
                    "motion": {"enabled": False},
                }
            },
            "runtime": {"threads": 1, "providers": UNAVAILABLE_GPU},
            "metrics": {"enabled": False},
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
            "outputs": {"jsonl": str(tmp_path / "events.jsonl")},
        }
    )
    processed: list[int] = []
    pipelines: list[Any] = []
    pool = make_pool(cfg)  # the run's pool, with the config's providers: this wrapped pipeline loads there

    def pipeline_factory(name: str, cam: CameraConfig, app: Any) -> Any:
        p = Pipeline(name, cam, app, pool=pool)
        inner = p.process

        def process(frame: Any) -> Any:
            processed.append(frame.index)
            return inner(frame)

        p.process = process  # type: ignore[method-assign]
        pipelines.append(p)
        return p

    stop = threading.Event()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(run(cfg, stop, pipeline_factory=pipeline_factory, pool=pool)))
    t.start()
    try:
        deadline = time.monotonic() + 60
        while len(processed) < 8 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        t.join(30)
    assert result == [0]
    assert len(processed) >= 8, f"only {len(processed)} frames reached the pipeline"
    assert len(_warnings(caplog, "falling back to software decoding")) == 1
    assert len(_warnings(caplog, "execution provider")) == 1
