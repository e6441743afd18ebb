"""Cheap CI guard for Dockerfile.arm64 and deploy/arm64/check.sh (the real proof, an emulated arm64
build, takes tens of minutes: ``make arm64-check``). Checks that the two stay consistent, that every
file the Dockerfile copies exists, and that the pinned wheel set resolves for aarch64 (a pip
``--dry-run`` against the index: metadata only, ~15 s)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from tests.conftest import ROOT, SHARED, need, seed_cache

DOCKERFILE = ROOT / "Dockerfile.arm64"
ARM64 = ROOT / "deploy" / "arm64"
CHECK = ARM64 / "check.sh"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and ln[0] != "#"]


def test_every_copied_file_exists() -> None:
    copies = [args for word, args in _instructions() if word == "COPY"]
    assert copies
    for args in copies:
        parts = shlex.split(args)
        flags = [p for p in parts if p.startswith("--")]
        srcs = [p for p in parts if not p.startswith("--")][:-1]
        base = ROOT
        if "--from=shared" in flags:
            need(SHARED.is_dir(), f"shared folder {SHARED} (the 'shared' build context)")
            base = SHARED
        for src in srcs:
            assert (base / src).exists(), f"Dockerfile.arm64 copies {src}, which does not exist in {base}"


def test_dockerfile_essentials() -> None:
    ins = _instructions()
    words = [w for w, _ in ins]
    assert ins[-1] == ("CMD", '["run", "--config", "/etc/edge/edge.yaml"]')
    assert ("ENTRYPOINT", '["edge"]') in ins
    user = [a for w, a in ins if w == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")  # nothing runs as root after
    health = next(a for w, a in ins if w == "HEALTHCHECK")
    assert "/healthz" in health
    runs = " ".join(a for w, a in ins if w == "RUN")
    assert "deploy/arm64/install.sh" in runs  # the same install steps as check.sh
    assert "edge models pull $EDGE_MODELS --mirror" in runs
    assert any(w == "ARG" and a.startswith("MODEL_MIRROR") for w, a in ins)


def _image_models() -> list[str]:
    """The models Dockerfile.arm64 (and check.sh, which reads the same line) bakes into the image."""
    m = re.search(r'^ARG EDGE_MODELS="(.+)"$', DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert m, "check.sh reads the model list from the ARG EDGE_MODELS=\"...\" line"
    return m.group(1).split()


def _config_default_models() -> dict[str, str]:
    """Every model the appliance uses by default: ``field path -> model`` for each string field of
    the config (any section, nested or optional) whose default names a registry model."""
    from edge.config import AppConfig
    from edge.registry import list_manifests

    known = {m.name for m in list_manifests()}
    found: dict[str, str] = {}
    seen: set[type] = set()

    def walk(cls: type[BaseModel]) -> None:
        if cls in seen:
            return
        seen.add(cls)
        for name, field in cls.model_fields.items():
            if isinstance(field.default, str) and field.default in known:
                found[f"{cls.__name__}.{name}"] = field.default
            stack: list[typing.Any] = [field.annotation]
            while stack:  # dict[str, CameraConfig], PlatesConfig | None, ...
                t = stack.pop()
                if isinstance(t, type) and issubclass(t, BaseModel):
                    walk(t)
                stack.extend(typing.get_args(t))

    walk(AppConfig)
    return found


def test_every_default_model_is_in_the_image() -> None:
    """A default the image lacks is fetched (or built) at runtime: offline, or with the read-only
    cache, the appliance then runs a fallback or no plate reader at all."""
    defaults = _config_default_models()
    assert {"DetectConfig.model", "PlatesConfig.ocr_model", "PrivacyConfig.segmenter"} <= set(defaults)  # found
    missing = {field: name for field, name in defaults.items() if name not in _image_models()}
    assert not missing, f"default models missing from Dockerfile.arm64's EDGE_MODELS: {missing}"


# Run in a child process: an audit hook cannot be removed once added. Every attempt to create,
# write, rename or delete anything in the cache raises EROFS, as the image's read-only cache would.
_READ_ONLY_PROBE = """
import errno, json, logging, os, sys
from pathlib import Path

cache = os.path.realpath(sys.argv[1])
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT
CHANGES = ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.chmod")
writes, warnings = [], []

def hook(event, args):
    if event == "open":
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & WRITE_FLAGS)
    else:
        writing, path = event in CHANGES, args[0]
    if writing and isinstance(path, (str, bytes, os.PathLike)):
        path = os.fsdecode(path)
        if os.path.realpath(path).startswith(cache):
            writes.append(f"{event} {path}")
            raise OSError(errno.EROFS, "Read-only file system", path)

class Collect(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())

sys.addaudithook(hook)
logging.getLogger().addHandler(Collect(logging.WARNING))
from edge.config import DetectConfig, PlatesConfig
from edge.inference.model import load_model
from edge.plates.reader import PlateReader
from edge.registry import ensure_model

resolved = {n: ensure_model(n, cache_dir=Path(cache))[0].name for n in sys.argv[2:]}
for name in (DetectConfig().model, DetectConfig().attributes_model):
    load_model(name, cache_dir=Path(cache))
PlateReader(PlatesConfig(), cache_dir=Path(cache))
print(json.dumps({"resolved": resolved, "writes": writes, "warnings": warnings}))
"""


def test_the_image_cache_serves_every_default_read_only_and_offline(
    tmp_path: Path, shared_models: Path, built_defaults: list[Path]
) -> None:
    """The image's pulls (Dockerfile.arm64: a build-host stage gathers the models, the INT8 defaults
    built by edge convert; the arm64 stage pulls them from that folder) leave a cache from which
    every default loads with no mirror, no network and no write: nothing falls back to a source."""
    need(bool(built_defaults), "python package nncf (the INT8 defaults are built with it)")
    from edge.registry import pull

    stage = seed_cache(tmp_path / "build-stage", built_defaults)  # the build stage's own INT8 builds
    image = tmp_path / "image-cache"
    for name in _image_models():
        pull(name, cache_dir=stage, mirror=str(shared_models), progress=lambda _: None)
    for name in _image_models():
        pull(name, cache_dir=image, mirror=str(stage), progress=lambda _: None)
    defaults = sorted(set(_config_default_models().values()))
    no_mirror = tmp_path / "no-mirror"  # EDGE_MODEL_MIRROR unset would mean ../shared/models beside a checkout
    no_mirror.mkdir()
    env = {"PATH": "/usr/bin:/bin", "EDGE_MODEL_MIRROR": str(no_mirror), "EDGE_MODEL_CACHE": str(image),
           "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", _READ_ONLY_PROBE, str(image), *defaults],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["writes"] == [] and out["warnings"] == [], out
    assert out["resolved"] == {n: n for n in defaults}


def test_models_in_the_image_are_known_and_cover_all_backends() -> None:
    from edge.registry import find_manifest

    names = _image_models()
    manifests = [find_manifest(n) for n in names]  # raises for an unknown model
    assert {b for mf in manifests for b in mf.backends[:1]} >= {"litert", "onnx", "openvino"}
    # the image's default config and the demo use models that are baked in
    from edge.config import load_config

    cfg = load_config(ARM64 / "edge.yaml")
    for cam in cfg.cameras.values():
        assert cam.detect.model in names and (cam.detect.attributes_model or names[0]) in names


def test_the_demo_footage_is_in_the_image() -> None:
    """``edge demo`` in the image plays the lot clip and the gate scene (its plate half) from
    $EDGE_SHARED=/usr/share/edge; a missing file silently drops that half."""
    from edge.cli import demo_video, shared_dir
    from edge.demo import GATE_PHOTO

    ins = _instructions()
    env = " ".join(a for w, a in ins if w == "ENV")
    assert "EDGE_SHARED=/usr/share/edge" in env
    copies = {tuple(shlex.split(a)[-2:]) for w, a in ins if w == "COPY" and "--from=shared" in a}
    check = CHECK.read_text(encoding="utf-8")
    for rel in (demo_video().relative_to(shared_dir()), Path("data") / GATE_PHOTO):
        assert (str(rel), f"/usr/share/edge/{rel}") in copies, f"Dockerfile.arm64 does not copy {rel}"
        assert f"$SHARED/{rel}" in check, f"check.sh does not copy {rel}"


def test_check_script_uses_the_shared_files() -> None:
    text = CHECK.read_text(encoding="utf-8")
    for name in ("install.sh", "requirements.txt", "apt-packages.txt", "platforms.txt", "smoke.py"):
        assert name in text, f"check.sh does not use deploy/arm64/{name}"
        assert (ARM64 / name).is_file()
    for cmd in ("edge demo --fast", "edge plates bench", "smoke.py $MODELS", "EDGE_MODELS", "edge run --config"):
        assert cmd in text
    # the runs inside see what the image gives them: no network, a cache nobody can write
    assert "unshare --net chroot --userspec=edge:edge" in text
    assert 'bind "$ROOT/opt/edge/model-cache" /opt/edge/model-cache ro' in text
    # exact versions everywhere: the build-host stage from the x86 lock, the arm64 stage from its own
    assert "-c constraints.txt" in DOCKERFILE.read_text(encoding="utf-8") and (ROOT / "constraints.txt").is_file()
    assert "apt-packages.txt" in DOCKERFILE.read_text(encoding="utf-8")
    assert "requirements.txt" in (ARM64 / "install.sh").read_text(encoding="utf-8")
    res = subprocess.run(["bash", "-n", str(CHECK)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run(["sh", "-n", str(ARM64 / "install.sh")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_requirements_are_pinned_and_cover_the_project() -> None:
    import tomllib

    pins = {}
    for line in _lines(ARM64 / "requirements.txt"):
        name, sep, version = line.partition("==")
        assert sep and version, f"not pinned: {line}"
        pins[_norm(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for dep in project["dependencies"]:
        name = _norm(re.split(r"[<>=!~; \[]", dep, maxsplit=1)[0])
        assert name in pins, f"pyproject dependency {dep!r} is not pinned in deploy/arm64/requirements.txt"
    assert int(pins["numpy"].split(".")[0]) < 2  # the set proven under QEMU (make arm64-check)
    # LiteRT as ai-edge-litert 1.x: 2.3 segfaults under QEMU, tflite-runtime 2.14 cannot load the
    # privacy segmenter's custom op (deploy/arm64/requirements.txt)
    assert {"ai-edge-litert", "onnxruntime", "openvino"} <= set(pins) and pins["ai-edge-litert"].startswith("1.")


@pytest.mark.slow
def test_wheel_set_resolves_for_aarch64(tmp_path: Path) -> None:
    """Every pinned package has a cp311 aarch64 (or pure) wheel, and the set is closed under its
    dependencies (so check.sh's --no-deps --no-index install cannot miss one)."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    platforms = [a for p in _lines(ARM64 / "platforms.txt") for a in ("--platform", p)]
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", "-q"]
    cmd += ["--only-binary=:all:", "--python-version", "3.11", *platforms, "--target", str(tmp_path / "t")]
    cmd += ["-r", str(ARM64 / "requirements.txt"), "--report", str(report)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        need(False, "the package index within 90 s")
        return
    if res.returncode != 0 and ("Network" in res.stderr or "connection" in res.stderr.lower()):
        need(False, f"the package index: {res.stderr.strip().splitlines()[-1]}")
    assert res.returncode == 0, res.stderr[-2000:]
    installs = json.loads(report.read_text())["install"]
    assert len(installs) == len(_lines(ARM64 / "requirements.txt"))
    have = {_norm(i["metadata"]["name"]) for i in installs}
    env = default_environment()
    env.update(platform_machine="aarch64", sys_platform="linux", platform_system="Linux")
    env.update(python_version="3.11", python_full_version="3.11.2", implementation_name="cpython")
    for i in installs:
        wheel = i["download_info"]["url"].rsplit("/", 1)[-1]
        assert wheel.endswith("-none-any.whl") or "aarch64" in wheel, wheel
        assert "cp311" in wheel or "abi3" in wheel or "py3" in wheel or "py2.py3" in wheel, wheel
        for spec in i["metadata"].get("requires_dist", []):
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
                continue
            assert _norm(req.name) in have, f"{i['metadata']['name']} needs {req.name}, missing from requirements.txt"
