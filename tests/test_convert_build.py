"""Models built on first pull (manifest ``build:``): from a clean cache the registry runs edge convert,
accepts the result by its report metric, records its sha256, and the next pull is a silent cache
hit; without the conversion toolchain one error line says what to run.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import edge.registry.manifest as manifest_mod
from edge.errors import ModelError
from edge.inference.backends import load_backend
from edge.registry import ensure_model, list_manifests, pull
from tests.conftest import need

REPO_MODELS = Path(__file__).resolve().parents[1] / "models"
BUILT = "vehicle-detection-0200-openvino-int8"


@pytest.fixture()
def clean_models(tmp_path: Path, model_env: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A models dir holding the source model and the built model's manifest (small build args)."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "vehicle-detection-0200.yaml").write_text((REPO_MODELS / "vehicle-detection-0200.yaml").read_text())
    data = yaml.safe_load((REPO_MODELS / f"{BUILT}.yaml").read_text())
    data["build"]["args"] = ["--to", "openvino-int8", "--calib", "{data}/videos/traffic_frames.mp4",
                             "--calib-frames", "6", "--eval", "{data}/videos/car-detection.mp4", "--eval-frames", "4",
                             "--bench-runs", "2"]
    data["build"]["min_metric"] = 0.5
    (models / f"{BUILT}.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setattr(manifest_mod, "MODELS_DIR", models)
    monkeypatch.setenv("EDGE_DATA_DIR", str(shared_data))
    manifest_mod._all.cache_clear()
    yield models
    manifest_mod._all.cache_clear()


def test_repo_build_manifests_name_registry_sources() -> None:
    built = [m for m in list_manifests() if m.build is not None]
    assert {m.name for m in built} >= {BUILT, "vehicle-attributes-recognition-barrier-0039-openvino-int8"}
    names = {m.name for m in list_manifests()}
    assert all(m.build is not None and m.build.source in names for m in built)


def test_first_pull_builds_then_cache_hits(clean_models: Path, model_env: Path) -> None:
    for mod in ("nncf", "openvino"):
        need(importlib.util.find_spec(mod) is not None, f"python package {mod} (pip install '.[convert]')")
    lines: list[str] = []
    m, folder = ensure_model(BUILT, progress=lines.append)
    assert any(ln.startswith(f"building {BUILT} from vehicle-detection-0200") for ln in lines)
    assert any(ln.startswith(f"built {BUILT}: mAP@0.5") for ln in lines)
    record = json.loads((folder / ".built.json").read_text())
    assert set(record["sha256"]) == {f.path for f in m.files} and record["metric_value"] >= 0.5
    assert load_backend("openvino", folder / m.entry).inputs[0].shape == (1, 3, 256, 256)

    again: list[str] = []
    assert pull(BUILT, progress=again.append) == folder and again == []  # recorded sha256 match: no rebuild

    (folder / m.entry).write_text("tampered")
    third: list[str] = []
    pull(BUILT, progress=third.append)
    assert any(ln.startswith("building") for ln in third)


def test_without_the_toolchain_one_error_says_what_to_run(clean_models: Path, model_env: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nncf" else real(name, *a))
    with pytest.raises(ModelError) as err:
        pull(BUILT, progress=lambda _: None)
    text = str(err.value)
    assert "\n" not in text and "pip install 'edge-appliance[convert]'" in text
    assert "edge convert vehicle-detection-0200 --to openvino-int8" in text and f"--name {BUILT}" in text
