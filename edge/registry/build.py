"""Models built on first pull: the manifest's ``build`` recipe runs on this machine through the
model builder the program installed (``edge convert``'s, installed by the ``edge`` command).

For conversions (e.g. INT8 models made by NNCF) whose files are in no mirror and must never be
committed. The result is checked by its verification report (``metric_value >= min_metric``)
rather than by sha256, because the quantizer's bytes change between library versions; the sha256
of what was built is recorded in ``.built.json`` in the cache folder and checked on every later
pull like a manifest's. Without a builder, or without the conversion toolchain installed, one
error says what to run.

The registry never imports the toolchain (``convert`` imports the registry): the ``edge`` command
installs ``convert.builder.ConvertBuilder`` with :func:`set_builder` at start-up, tests that build
install it in a fixture.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from edge.errors import ModelError
from edge.registry.digest import sha256_of
from edge.registry.manifest import Manifest

RECORD = ".built.json"
INSTALL = "pip install 'edge-appliance[convert]'"


class Builder(Protocol):
    """Runs a conversion recipe on this machine (``edge convert ARGS --out OUT``)."""

    def missing(self) -> str | None:
        """None when this machine can build; else what to install, e.g. ``pip install ...``."""

    def __call__(self, args: list[str], out: Path, *, quiet: bool) -> None:
        """Build into ``out`` (``out/<name>/`` with the files and report.json); raise ModelError
        (one line) when the conversion fails."""


_builder: Builder | None = None  # installed by the program's entry point (edge.cli.main)


def set_builder(builder: Builder | None) -> Builder | None:
    """Install ``builder`` for models built on first pull (None: none); returns the previous one."""
    global _builder
    previous, _builder = _builder, builder
    return previous


def get_builder() -> Builder | None:
    """The installed builder, if any."""
    return _builder


class ToolchainMissing(ModelError):
    """A built model's recipe needs ``edge convert``, which is not installed. ``str()`` says what
    to run (for ``edge models pull``); ``short`` says it in a line (for the appliance's fallback)."""

    def __init__(self, message: str, short: str) -> None:
        super().__init__(message)
        self.short = short


def checkout_data() -> Path:
    """The shared data folder beside a development checkout (``../shared/data``)."""
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def data_dir() -> Path:
    """``$EDGE_DATA_DIR``, else the shared data folder beside this checkout."""
    return Path(os.environ.get("EDGE_DATA_DIR") or checkout_data())


def command(manifest: Manifest) -> list[str]:
    """The ``edge convert`` arguments that build ``manifest`` (``{data}`` expanded)."""
    assert manifest.build is not None
    args = [a.replace("{data}", str(data_dir())) for a in manifest.build.args]
    return [manifest.build.source, *args, "--name", manifest.name]


def recorded(folder: Path) -> dict[str, str]:
    """path -> sha256 of a model built into ``folder`` (empty when it was not built here)."""
    try:
        data = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.get("sha256", {}).items()} if isinstance(data, dict) else {}


def _usable_builder(manifest: Manifest, shown: str) -> Builder:
    """The installed builder, or ToolchainMissing saying what to run when there is none or it
    cannot build on this machine."""
    assert manifest.build is not None
    builder = _builder
    install = builder.missing() if builder is not None else None
    if builder is not None and install is None:
        return builder
    name = manifest.name
    elsewhere = f"or on a machine that has it run `{shown} --out DIR` and pull with EDGE_MODEL_MIRROR=DIR"
    if builder is None:  # e.g. a script using the registry without the edge command's start-up
        raise ToolchainMissing(
            f"model {name} is built from {manifest.build.source} by edge convert, and this program installed no "
            f"model builder: build it with `edge models pull {name}`, {elsewhere}",
            short=f"model {name} is built on first pull by edge convert, and this program installed no model "
            f"builder (`edge models pull {name}` builds it)",
        )
    raise ToolchainMissing(
        f"model {name} is built from {manifest.build.source} by the conversion toolchain, which is not installed: "
        f"{install} (then pull again), {elsewhere}",
        short=f"model {name} is built on first pull by the conversion toolchain, which is not installed ({install}, "
        f"or a mirror holding it: `edge models pull {name}` prints the command)",
    )


def build(manifest: Manifest, folder: Path, say: Callable[[str], None]) -> None:
    """Run the conversion into a temporary folder, check its report, move the files to ``folder``."""
    assert manifest.build is not None
    argv = command(manifest)
    shown = "edge convert " + " ".join(argv)
    builder = _usable_builder(manifest, shown)
    say(f"building {manifest.name} from {manifest.build.source} (first pull; runs edge convert, a few minutes): "
        f"{shown}")
    with tempfile.TemporaryDirectory(prefix=f".build-{manifest.name}-", dir=folder.parent) as tmp:
        try:
            # NNCF prints INFO lines and progress bars on stdout, the command's output: off, as
            # every INFO line of edge is, unless logging is at INFO (-v)
            builder(argv, Path(tmp), quiet=not logging.getLogger("edge").isEnabledFor(logging.INFO))
        except (ModelError, SystemExit) as err:
            raise ModelError(f"building {manifest.name} failed: {err}") from None
        value, metric = _install(manifest, Path(tmp) / manifest.name, folder, where="built")
    say(f"built {manifest.name}: {metric} {100 * value:.2f} (needs >= {100 * manifest.build.min_metric:.2f}), "
        f"report in {folder / 'report.json'}")


def adopt(manifest: Manifest, source: Path, folder: Path, say: Callable[[str], None]) -> None:
    """Install a copy built elsewhere (``edge convert ... --out DIR``: ``DIR/<name>/`` with its
    report.json) from a folder mirror, accepted by its report like a local build: the bytes of
    another machine's build differ from the manifest's sha256."""
    assert manifest.build is not None
    if not (source / "report.json").is_file():
        raise ModelError(
            f"mirror copy of {manifest.name} in {source} differs from the manifest's sha256 and has no report.json "
            f"to accept it by (copy the whole folder edge convert --out wrote)"
        )
    with tempfile.TemporaryDirectory(prefix=f".adopt-{manifest.name}-", dir=folder.parent) as tmp:
        staged = Path(tmp)
        for name in [*(f.path for f in manifest.files), "report.json"]:
            (staged / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, staged / name)
        value, metric = _install(manifest, staged, folder, where=f"mirror copy in {source}")
    say(f"installed {manifest.name} built elsewhere ({source}): {metric} {100 * value:.2f} "
        f"(needs >= {100 * manifest.build.min_metric:.2f})")


def _install(manifest: Manifest, built: Path, folder: Path, *, where: str) -> tuple[float, str]:
    """Check ``built/report.json`` against ``min_metric``, move the files into ``folder`` and
    record their sha256. Returns (metric value, metric name)."""
    assert manifest.build is not None
    try:
        rep = json.loads((built / "report.json").read_text(encoding="utf-8"))
        value, metric = float(rep["metric_value"]), str(rep["verify"]["metric"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelError(f"{where}: {manifest.name} has no readable report.json ({err})") from None
    if value < manifest.build.min_metric:
        raise ModelError(
            f"{where}: {manifest.name}'s {metric} is {100 * value:.2f}, below the manifest's "
            f"{100 * manifest.build.min_metric:.2f}: not installed"
        )
    sums = {}
    for f in manifest.files:
        src = built / f.path
        if not src.is_file():
            raise ModelError(f"{where}: {manifest.name} has no {f.path}")
        dest = folder / f.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), dest)
        sums[f.path] = sha256_of(dest)
    shutil.copyfile(built / "report.json", folder / "report.json")
    (folder / RECORD).write_text(json.dumps({"sha256": sums, "metric_value": value}, indent=1), encoding="utf-8")
    return value, metric
