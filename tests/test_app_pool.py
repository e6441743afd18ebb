"""Issue 23: the loaded models belong to the run that loads them. ``edge run``'s App, ``edge
replay`` and a remote update's model check each load into the pool they are given or make
(:func:`edge.app.models.make_pool`), never into the process's default pool, so two runs in one
process never share a model object, and an App's ONNX models run with its config's providers."""

from __future__ import annotations

import gc
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edge.app import App, run
from edge.app.models import make_pool
from edge.config import AppConfig, parse_config
from edge.events.schema import Event
from edge.inference.model import LoadedModel, load_model
from edge.inference.pool import default_pool
from edge.sources import open_camera

MODEL = "yolox-nano-coco"  # small ONNX detector (3.7 MB): loads in well under a second
ONE_MODEL = {"model": MODEL, "attributes_model": None, "type_model": None}
UNAVAILABLE_GPU = ["CUDAExecutionProvider", "CPUExecutionProvider"]  # no GPU provider in this onnxruntime


def app_config(tmp_path: Path, url: str, **extra: Any) -> AppConfig:
    data: dict[str, Any] = {
        "cameras": {"gate": {"url": url, "detect": ONE_MODEL, "motion": {"enabled": False}}},
        "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        "outputs": {"jsonl": str(tmp_path / "events.jsonl")},
        "metrics": {"enabled": False},
        **extra,
    }
    return parse_config(data)


def loaded(app: App) -> list[LoadedModel]:
    """Start the App's model step alone (no cameras) and wait for it."""
    app.start_models()
    assert app.models_ready is not None and app.models_ready.wait(120)
    models = [m for m in app.models if isinstance(m, LoadedModel)]
    assert [m.name for m in models] == [MODEL]
    return models


@pytest.mark.usefixtures("model_env")
def test_two_apps_in_one_process_load_their_models_into_their_own_pools(tmp_path: Path) -> None:
    """Each App owns its pool: the model one loads is not the other's object, a camera of the
    same App finds it loaded (shared within the App), and the default pool never sees it."""
    cfg = app_config(tmp_path, str(tmp_path / "unused.mp4"))
    before = default_pool().loaded_count()
    first, second = App(cfg), App(cfg)
    assert first.pool is not second.pool
    (a,), (b,) = loaded(first), loaded(second)
    assert a.backend is not b.backend
    assert first.pool.loaded_count() == second.pool.loaded_count() == 1
    again = load_model(MODEL, pool=first.pool, **cfg.model_options())  # what a camera's pipeline does
    assert again.backend is a.backend and again is not a  # shared backend, the camera's own state
    assert default_pool().loaded_count() == before


@pytest.mark.usefixtures("model_env")
def test_an_apps_pool_runs_onnx_models_with_the_configs_providers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``runtime.providers`` reach the ONNX sessions of the App's own pool: the unavailable GPU
    provider is warned about once and the session falls back to CPU. Another App in the same
    process with the default providers has its own pool and loads the same file without one."""
    pytest.importorskip("onnxruntime")
    from edge.inference.backends import onnx as onnx_backend

    monkeypatch.setattr(onnx_backend, "_warned", set())
    caplog.set_level(logging.WARNING, logger="edge.inference.onnx")
    gpu = App(app_config(tmp_path, str(tmp_path / "unused.mp4"), runtime={"providers": UNAVAILABLE_GPU}))
    plain = App(app_config(tmp_path, str(tmp_path / "unused.mp4")))
    assert gpu.pool.settings.onnx.names == tuple(UNAVAILABLE_GPU)
    assert plain.pool.settings.onnx.names == ("CPUExecutionProvider",)
    (model,) = loaded(gpu)
    warned = [r.getMessage() for r in caplog.records if "execution provider" in r.getMessage()]
    assert len(warned) == 1 and "CUDAExecutionProvider" in warned[0]
    assert model.backend.providers == ["CPUExecutionProvider"]  # the session it actually runs
    caplog.clear()
    monkeypatch.setattr(onnx_backend, "_warned", set())
    (other,) = loaded(plain)
    assert other.backend is not model.backend
    assert not [r for r in caplog.records if "execution provider" in r.getMessage()]


def test_run_and_replay_never_load_into_the_default_pool(tmp_path: Path, car_video: Path, model_env: Path) -> None:
    """While ``edge run`` processes frames, and while ``edge replay`` emits events, their models
    are loaded - in their own pools: the process's default pool holds no more than before."""
    from edge.replay import replay

    cfg = app_config(tmp_path, str(car_video))
    gc.collect()  # the pool holds backends weakly: earlier tests' models go now, not mid-test
    before = default_pool().loaded_count()
    during: list[int] = []
    readers: list[Any] = []
    stop = threading.Event()
    rc: list[int] = []

    def camera(name: str, cam: Any) -> Any:
        readers.append(open_camera(name, cam))
        return readers[-1]

    th = threading.Thread(target=lambda: rc.append(run(cfg, stop, camera_factory=camera)), daemon=True)
    th.start()
    events = tmp_path / "events.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (events.is_file() and events.stat().st_size > 0):
        time.sleep(0.1)  # an event out: the camera's pipeline holds its model now
    during.append(default_pool().loaded_count())
    stop.set()
    th.join(30)
    assert rc == [0] and events.stat().st_size > 0

    def seen(_e: Event) -> None:
        during.append(default_pool().loaded_count())

    res = replay(str(car_video), cfg, "gate", on_event=seen, show_progress=False, start_time=0.0)
    assert res.events > 0
    assert max(during) <= before, (before, during)


@pytest.mark.usefixtures("model_env")
def test_an_updates_model_check_loads_into_the_pool_it_is_given(tmp_path: Path) -> None:
    """A remote update's models are checked and loaded in the running App's pool (the next run
    finds them there), not in the default pool."""
    from edge.update.models import models_in, verify

    cfg = app_config(tmp_path, str(tmp_path / "unused.mp4"))
    pool = make_pool(cfg)
    before = default_pool().loaded_count()
    held, sums = verify(cfg, list(models_in(cfg).values()), pool)
    assert list(sums) == [MODEL] and len(held) == 1
    assert pool.loaded_count() == 1 and default_pool().loaded_count() == before
    assert load_model(MODEL, pool=pool, **cfg.model_options()).backend is held[0].backend


def test_runs_restarted_by_updates_keep_one_pool_while_its_settings_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``edge run`` with updates restarts ``run()`` per applied update: the restarts get the same
    pool (the models the update checked stay loaded for the new run) until an update changes the
    pool's settings (here the ONNX providers): then a new pool with the new providers."""
    from edge.app import appliance

    pools: list[Any] = []
    monkeypatch.setattr(appliance, "run", lambda _cfg, _stop, *, pool, **_kw: pools.append(pool) or 0)
    run_kept = appliance._keeping_pool(None, True)
    plain = app_config(tmp_path, str(tmp_path / "unused.mp4"))
    gpu = app_config(tmp_path, str(tmp_path / "unused.mp4"), runtime={"providers": UNAVAILABLE_GPU})
    for cfg in (plain, plain, gpu, gpu):
        assert run_kept(cfg, threading.Event(), updates=None) == 0
    assert pools[0] is pools[1] and pools[2] is pools[3] and pools[1] is not pools[2]
    assert pools[0].settings.onnx.names == ("CPUExecutionProvider",)
    assert pools[2].settings.onnx.names == tuple(UNAVAILABLE_GPU)
