"""Models built on first pull: ``edge convert`` runs the manifest's ``build`` recipe on this machine.

For conversions (e.g. INT8 models made by NNCF) whose files are in no mirror and must never be
committed. The result is checked by its verification report (``metric_value >= min_metric``)
rather than by sha256, because the quantizer's bytes change between library versions; the sha256
of what was built is recorded in ``.built.json`` in the cache folder and checked on every later
pull like a manifest's. Without the conversion toolchain installed, one error says what to run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from edge.errors import ModelError
from edge.registry.manifest import Manifest

RECORD = ".built.json"
_CHECKOUT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def data_dir() -> Path:
    """``$EDGE_DATA_DIR``, else the shared data folder beside this checkout."""
    return Path(os.environ.get("EDGE_DATA_DIR") or _CHECKOUT_DATA)


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


def build(manifest: Manifest, folder: Path, say: Callable[[str], None]) -> None:
    """Run the conversion into a temporary folder, check its report, move the files to ``folder``."""
    import importlib.util

    from edge.registry.pull import sha256_of

    assert manifest.build is not None
    argv = command(manifest)
    shown = "edge convert " + " ".join(argv)
    if importlib.util.find_spec("nncf") is None or importlib.util.find_spec("convert") is None:
        raise ModelError(
            f"model {manifest.name} is built from {manifest.build.source} by the conversion toolchain, which is "
            f"not installed: pip install 'edge-appliance[convert]' (then pull again), or on a machine that has "
            f"it run `{shown} --out DIR` and pull with EDGE_MODEL_MIRROR=DIR"
        )
    from convert.cli import build_parser, convert
    from convert.errors import ConvertError

    say(f"building {manifest.name} from {manifest.build.source} (first pull; runs edge convert, a few minutes): "
        f"{shown}")
    with tempfile.TemporaryDirectory(prefix=f".build-{manifest.name}-", dir=folder.parent) as tmp:
        try:
            rep = convert(build_parser().parse_args([*argv, "--out", tmp]))
        except (ConvertError, ModelError, SystemExit) as err:
            raise ModelError(f"building {manifest.name} failed: {err}") from None
        value = float(rep["metric_value"])
        if value < manifest.build.min_metric:
            raise ModelError(
                f"built {manifest.name} but its {rep['verify']['metric']} is {100 * value:.2f}, below the "
                f"manifest's {100 * manifest.build.min_metric:.2f}: not installed (report kept in no cache)"
            )
        built = Path(tmp) / manifest.name
        sums = {}
        for f in manifest.files:
            src = built / f.path
            if not src.is_file():
                raise ModelError(f"building {manifest.name} produced no {f.path}")
            dest = folder / f.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), dest)
            sums[f.path] = sha256_of(dest)
        shutil.copyfile(built / "report.json", folder / "report.json")
        (folder / RECORD).write_text(json.dumps({"sha256": sums, "metric_value": value}, indent=1), encoding="utf-8")
    say(f"built {manifest.name}: {rep['verify']['metric']} {100 * value:.2f} (needs >= "
        f"{100 * manifest.build.min_metric:.2f}), report in {folder / 'report.json'}")
