"""The process's default :class:`~edge.inference.pool.ModelPool` under the function names callers
used before pools existed, for library callers without a pool of their own (the privacy filters,
scripts, tests). ``edge run``, ``edge replay`` and ``edge demo`` do not use it: each owns its pool
(``edge.app.models.make_pool``). New code takes a pool (``load_model(..., pool=...)``); see
:mod:`edge.inference.pool`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.inference.backends import Backend
from edge.inference.model import LoadedModel
from edge.inference.model import preload as _preload
from edge.inference.pool import ModelPool, PoolSettings, default_pool, sharing_enabled
from edge.registry import Manifest

__all__ = [
    "ModelPool",
    "PoolSettings",
    "clear",
    "configure",
    "default_pool",
    "ensure_model_once",
    "loaded_count",
    "preload",
    "shared_backend",
    "sharing_enabled",
]


def configure(parallel: int) -> None:
    """``default_pool().configure(parallel=parallel)``."""
    default_pool().configure(parallel=parallel)


def shared_backend(kind: str, path: Path, threads: int = 2, device: str = "CPU", precision: str = "auto") -> Backend:
    """``default_pool().backend(...)``."""
    return default_pool().backend(kind, path, threads, device, precision)


def ensure_model_once(
    name: str, *, cache_dir: Path | None = None, mirror: str | None = None, progress: Any = None
) -> tuple[Manifest, Path]:
    """``default_pool().ensure_model(...)``."""
    return default_pool().ensure_model(name, cache_dir=cache_dir, mirror=mirror, progress=progress)


def preload(names: list[str], options: dict[str, Any]) -> list[LoadedModel]:
    """``edge.inference.model.preload`` in the options' pool, else the default one (plate
    readers: ``edge.plates.reader.load_plate_reader``)."""
    return _preload(names, options)


def loaded_count() -> int:
    """``default_pool().loaded_count()``."""
    return default_pool().loaded_count()


def clear() -> None:
    """``default_pool().clear()``."""
    default_pool().clear()
