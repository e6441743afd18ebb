"""Shared test helpers. Component fixtures live in tests/fixtures/ (one module per component)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EDGE_SHARED", ROOT.parent / "shared")).resolve()
SHARED_MODELS = SHARED / "models"
SHARED_DATA = SHARED / "data"
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(ok: bool, what: str) -> None:
    """Require a component: fail in CI (CI=true) when it is missing, skip with a reason elsewhere."""
    if ok:
        return
    if CI:
        pytest.fail(f"required component missing in CI: {what}")
    pytest.skip(f"component missing: {what}")


def need_exe(name: str) -> str:
    """Path of an executable, or fail/skip via ``need``."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    need(path is not None, f"executable {name}")
    assert path is not None
    return path


def error_lines(stderr: str) -> list[str]:
    """The non-empty lines of stderr, less the model-pull report ("pulling X from ...", "done: X")
    that precedes the work: what a user reads as the command's answer."""
    lines = [ln.rsplit("\r", 1)[-1] for ln in stderr.splitlines()]
    return [ln for ln in lines if ln.strip() and not ln.startswith(("pulling ", "done: "))]


@pytest.fixture(scope="session")
def shared_models() -> Path:
    need(SHARED_MODELS.is_dir(), f"shared model mirror at {SHARED_MODELS}")
    return SHARED_MODELS


@pytest.fixture(scope="session")
def shared_data() -> Path:
    need(SHARED_DATA.is_dir(), f"shared data at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def car_video(shared_data: Path) -> Path:
    p = shared_data / "videos" / "car-detection.mp4"
    need(p.is_file(), str(p))
    return p


# The appliance's default models are built on first pull (edge convert, ~50 s here): built once
# into the machine's model cache, kept between runs, and copied into each test's fresh cache.
BUILT_DEFAULTS = ("vehicle-detection-0200-openvino-int8", "vehicle-attributes-recognition-barrier-0039-openvino-int8")


@pytest.fixture(scope="session")
def built_defaults(shared_models: Path, shared_data: Path) -> list[Path]:
    """Cache folders of the default INT8 models; none where the toolchain is missing outside CI
    (the appliance then runs their source models, as a device without it does)."""
    import importlib.util

    if importlib.util.find_spec("nncf") is None:
        if CI:
            pytest.fail("required component missing in CI: python package nncf (pip install '.[convert]')")
        return []
    from convert.builder import install
    from edge.registry import pull
    from edge.registry.build import set_builder
    from edge.registry.pull import default_cache_dir

    previous = install()  # the edge command installs edge convert as the registry's builder at start-up
    old = os.environ.get("EDGE_DATA_DIR")
    os.environ["EDGE_DATA_DIR"] = str(shared_data)  # the recipes' calibration videos
    try:
        return [pull(name, cache_dir=default_cache_dir(), mirror=str(shared_models)) for name in BUILT_DEFAULTS]
    finally:
        set_builder(previous)
        if old is None:
            del os.environ["EDGE_DATA_DIR"]
        else:
            os.environ["EDGE_DATA_DIR"] = old


def seed_cache(cache: Path, built: list[Path]) -> Path:
    """Copy the built default models into ``cache`` (a hit for the registry: recorded sha256)."""
    for folder in built:
        if not (cache / folder.name).exists():
            shutil.copytree(folder, cache / folder.name, ignore=shutil.ignore_patterns(".pull.lock"))
    return cache


@pytest.fixture()
def model_env(tmp_path: Path, shared_models: Path, built_defaults: list[Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the model registry at the shared mirror with a fresh per-test cache (holding the
    built default models)."""
    cache = seed_cache(tmp_path / "model-cache", built_defaults)
    monkeypatch.setenv("EDGE_MODEL_MIRROR", str(shared_models))
    monkeypatch.setenv("EDGE_MODEL_CACHE", str(cache))
    return cache


# Component fixtures: each owner adds one import line here.
from tests.fixtures.mqtt import *  # noqa: E402,F401,F403
from tests.fixtures.rtsp import *  # noqa: E402,F401,F403
