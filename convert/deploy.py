"""Deployable output: model files in a mirror-layout folder (``OUT/<name>/<files>``) plus a manifest
in the registry's format (``OUT/<name>.yaml`` or ``--models-dir``), with sha256 and size of every file.

So ``OUT`` works both as ``EDGE_MODEL_MIRROR`` (where the registry pulls files from) and as
``EDGE_MODELS_DIR`` (where it reads manifests); see docs/convert.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from edge.registry import Manifest
from edge.registry.pull import sha256_of


def file_entry(folder: Path, rel: str, name: str) -> dict[str, Any]:
    p = folder / rel
    # no upstream: converted weights are produced by `edge convert` and pulled from a mirror folder
    return {"path": rel, "url": f"edge-convert:{name}/{rel}", "sha256": sha256_of(p), "size": p.stat().st_size}


def write_manifest(
    base: Manifest,
    *,
    name: str,
    fmt: str,
    backends: list[str],
    folder: Path,
    files: list[str],
    entry: str,
    description: str,
    source_note: str,
    models_dir: Path,
    source_folder: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Write ``models_dir/<name>.yaml`` for model files already in ``folder``; copies the source's
    labels file next to them. The result validates as a ``Manifest``."""
    extra = []
    if base.labels_file and source_folder is not None and (source_folder / base.labels_file).is_file():
        shutil.copyfile(source_folder / base.labels_file, folder / base.labels_file)
        extra.append(base.labels_file)
    data = base.model_dump(mode="json", exclude_none=True)
    data.update(
        name=name,
        description=description,
        format=fmt,
        backends=backends,
        entry=entry,
        files=[file_entry(folder, f, name) for f in [*files, *extra]],
        source=source_note,
    )
    data.update(overrides or {})
    Manifest.model_validate(data)  # fail here, not in the appliance
    models_dir.mkdir(parents=True, exist_ok=True)
    out = models_dir / f"{name}.yaml"
    header = (
        f"# Model manifest: {name}, produced by `edge convert` (weights in a mirror folder, never committed).\n"
        f"# Pull with EDGE_MODEL_MIRROR=<folder holding {name}/>.\n"
    )
    out.write_text(header + yaml.safe_dump(data, sort_keys=False, width=120), encoding="utf-8")
    return out
