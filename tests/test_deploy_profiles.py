"""Device profiles (deploy/profiles/*.yaml) are valid configs with the settings their device needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import AppConfig, load_config
from edge.registry import find_manifest
from tests.conftest import ROOT

PROFILES = ROOT / "deploy" / "profiles"


def _profile(name: str) -> AppConfig:
    return load_config(PROFILES / f"{name}.yaml")


@pytest.mark.parametrize("path", sorted(PROFILES.glob("*.yaml")), ids=lambda p: p.stem)
def test_profile_passes_edge_config_check(path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "edge", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert res.returncode == 0 and ": OK" in res.stdout, res.stderr
    cfg = load_config(path)
    for cam in cfg.cameras.values():  # every model a profile names exists in the registry
        for model in (cam.detect.model, cam.detect.attributes_model, cam.detect.classifier_model):
            if model:
                find_manifest(model)


def test_expected_profiles_exist() -> None:
    assert {p.stem for p in PROFILES.glob("*.yaml")} >= {"raspberry-pi", "jetson", "intel"}
    assert (PROFILES / "ncs2.md").is_file()


def test_raspberry_pi_profile() -> None:
    cfg = _profile("raspberry-pi")
    cam = next(iter(cfg.cameras.values()))
    assert cam.decoder == "h264_v4l2m2m"
    manifest = find_manifest(cam.detect.model)
    assert manifest.backends == ["litert"] and manifest.format == "tflite"
    assert manifest.input is not None and manifest.input.dtype == "uint8"  # an INT8 (uint8-quantized) model
    assert cam.detect.attributes_model is None or "litert" in find_manifest(cam.detect.attributes_model).backends
    assert cfg.runtime.threads == 4


def test_jetson_profile() -> None:
    cfg = _profile("jetson")
    cam = next(iter(cfg.cameras.values()))
    assert cfg.runtime.providers[:2] == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    assert cfg.runtime.providers[-1] == "CPUExecutionProvider"
    assert "onnx" in find_manifest(cam.detect.model).backends
    assert cam.decoder == "h264_nvv4l2dec"
    assert cam.plates is not None and cam.plates.backend == "onnx"


def test_intel_profile() -> None:
    cfg = _profile("intel")
    cam = next(iter(cfg.cameras.values()))
    assert cam.hwaccel == "vaapi" and cam.hwaccel_device == "/dev/dri/renderD128"
    assert "GPU" in cfg.runtime.device
    assert find_manifest(cam.detect.model).backends[0] == "openvino"


def test_intel_profile_device_compiles_here(model_env: Path) -> None:
    """AUTO:GPU,CPU falls back to the CPU on a machine without an Intel GPU (this one)."""
    pytest.importorskip("openvino")
    from edge.inference.model import load_model

    cfg = _profile("intel")
    model = load_model("vehicle-detection-0200", device=cfg.runtime.device, threads=1)
    assert model.backend_key == "openvino"
