"""Models built on first pull (manifest ``build:``): from a clean cache the registry runs edge convert,
accepts the result by its report metric, records its sha256, and the next pull is a silent cache
hit; without the conversion toolchain one error line says what to run.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import edge.registry.manifest as manifest_mod
from convert.builder import install
from edge.errors import ModelError
from edge.inference.backends import load_backend
from edge.registry import ensure_model, list_manifests, pull
from edge.registry.build import set_builder
from tests.conftest import need

REPO_MODELS = Path(__file__).resolve().parents[1] / "models"
BUILT = "vehicle-detection-0200-openvino-int8"
pull_mod = importlib.import_module("edge.registry.pull")  # the package exports a function of that name


@pytest.fixture(autouse=True)
def convert_builder() -> Iterator[None]:
    """The registry builds with edge convert, as under the edge command (which installs it at start-up)."""
    previous = install()
    yield
    set_builder(previous)


@pytest.fixture()
def clean_models(tmp_path: Path, model_env: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A models dir holding the source model and the built model's manifest (small build args),
    and a cache without the built model."""
    shutil.rmtree(model_env / BUILT, ignore_errors=True)
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


def test_without_a_builder_one_error_names_the_model_and_the_command(clean_models: Path, model_env: Path) -> None:
    """The registry never imports the toolchain: a program that installed no builder (a script
    using edge.registry directly) gets one line naming the model and how to build it."""
    set_builder(None)
    with pytest.raises(ModelError) as err:
        pull(BUILT, progress=lambda _: None)
    text = str(err.value)
    assert "\n" not in text and f"model {BUILT} is built from vehicle-detection-0200" in text
    assert "installed no model builder" in text and f"`edge models pull {BUILT}`" in text
    assert "edge convert vehicle-detection-0200 --to openvino-int8" in text


def test_the_edge_command_installs_the_convert_builder() -> None:
    from convert.builder import ConvertBuilder
    from edge.cli import install_model_builder
    from edge.registry.build import get_builder

    set_builder(None)
    install_model_builder()
    assert isinstance(get_builder(), ConvertBuilder)


def test_the_appliance_runs_the_int8_builds_by_default(model_env: Path) -> None:
    from edge.config import AppConfig

    detect = AppConfig.model_validate({"cameras": {"lot": {"url": "lot.mp4"}}}).cameras["lot"].detect
    assert detect.attributes_model is not None
    for name, source in ((detect.model, "vehicle-detection-0200"),
                         (detect.attributes_model, "vehicle-attributes-recognition-barrier-0039")):
        lines: list[str] = []
        m, folder = ensure_model(name, progress=lines.append)
        assert lines == [] and folder.name == name  # the built model, from the cache, no fallback
        assert m.build is not None and m.build.source == source
        assert json.loads((folder / "report.json").read_text())["target"] == "openvino-int8"
        assert load_backend("openvino", folder / m.entry).inputs


def test_without_the_toolchain_the_source_model_runs_with_a_warning(
    clean_models: Path, model_env: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nncf" else real(name, *a))
    monkeypatch.setattr(pull_mod, "_FELL_BACK", set())  # warned once per process
    m, folder = ensure_model(BUILT, progress=lambda _: None)
    assert ensure_model(BUILT, progress=lambda _: None)[0].name == "vehicle-detection-0200"  # asked again
    assert m.name == "vehicle-detection-0200" and (folder / m.entry).is_file()
    warning = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warning) == 1 and "pip install 'edge-appliance[convert]'" in warning[0]
    assert warning[0].endswith("running its source model vehicle-detection-0200 instead")


def test_a_device_without_calibration_videos_replays_on_the_source_models(
    model_env: Path, car_video: Path, tmp_path: Path
) -> None:
    """No shared data on the device: the INT8 builds fail, the sources run, the events are the same."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "EDGE_DATA_DIR": str(tmp_path / "no-data"), "EDGE_MODEL_CACHE": str(tmp_path / "empty-cache")}
    proc = subprocess.run([sys.executable, "-m", "edge", "replay", str(car_video), "-q",
                           "--events-out", str(tmp_path / "e.jsonl")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "running its source model vehicle-detection-0200 instead" in proc.stderr
    assert "running its source model vehicle-attributes-recognition-barrier-0039 instead" in proc.stderr
    assert "4 tracks, 8 events" in proc.stdout + proc.stderr


def test_a_mirror_copy_built_elsewhere_is_accepted_by_its_report(
    clean_models: Path, model_env: Path, built_defaults: list[Path], tmp_path: Path
) -> None:
    """Another machine's NNCF writes other bytes than the manifest's sha256: its report decides."""
    need(bool(built_defaults), "the built default models (pip install '.[convert]')")
    manifest_file = clean_models / f"{BUILT}.yaml"
    data = yaml.safe_load(manifest_file.read_text())
    for f in data["files"]:
        f["sha256"] = "0" * 64  # this build is not the one the manifest recorded
    manifest_file.write_text(yaml.safe_dump(data))
    manifest_mod._all.cache_clear()
    mirror = tmp_path / "site-mirror"
    shutil.copytree(next(p for p in built_defaults if p.name == BUILT), mirror / BUILT,
                    ignore=shutil.ignore_patterns(".*"))

    lines: list[str] = []
    m, folder = ensure_model(BUILT, mirror=str(mirror), progress=lines.append)
    assert m.name == BUILT and any(ln.startswith(f"installed {BUILT} built elsewhere") for ln in lines)
    assert not any(ln.startswith("building") for ln in lines)
    assert load_backend("openvino", folder / m.entry).inputs[0].shape == (1, 3, 256, 256)
    again: list[str] = []
    assert pull(BUILT, mirror=str(mirror), progress=again.append) == folder and again == []

    report = json.loads((mirror / BUILT / "report.json").read_text())
    report["metric_value"] = 0.4  # below the manifest's min_metric (0.5 here)
    (mirror / BUILT / "report.json").write_text(json.dumps(report))
    with pytest.raises(ModelError, match=r"mAP@0.5 is 40.00, below the manifest's 50.00: not installed"):
        pull(BUILT, cache_dir=tmp_path / "other-cache", mirror=str(mirror), progress=lambda _: None)
    (mirror / BUILT / "report.json").unlink()
    with pytest.raises(ModelError, match=r"has no report.json"):
        pull(BUILT, cache_dir=tmp_path / "other-cache", mirror=str(mirror), progress=lambda _: None)


def test_a_read_only_cache_without_the_built_model_runs_the_source(
    clean_models: Path, model_env: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image's baked cache holds the sources only and cannot be written: the source runs."""
    monkeypatch.setattr(pull_mod, "_FELL_BACK", set())
    src, _ = ensure_model("vehicle-detection-0200", progress=lambda _: None)
    (model_env / BUILT).write_text("")  # the built model's folder cannot be made (as root, chmod would not stop it)
    m, folder = ensure_model(BUILT, progress=lambda _: None)
    assert m.name == src.name and folder == model_env / "vehicle-detection-0200"
    warning = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warning) == 1 and "is not writable" in warning[0] and f"edge models pull {BUILT}" in warning[0]
