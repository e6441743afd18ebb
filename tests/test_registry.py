"""Model registry: manifests for every shared model, pulls from the mirror, sha256 checks, errors."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from edge.errors import ModelError
from edge.registry import find_manifest, list_manifests, pull
from edge.registry.pull import sha256_of


def test_every_shared_model_has_a_manifest(shared_models: Path) -> None:
    names = {m.name for m in list_manifests()}
    shared = {p.name for p in shared_models.iterdir() if p.is_dir()}
    assert shared <= names, f"no manifest for {shared - names}"


def test_manifest_hashes_match_the_mirror(shared_models: Path) -> None:
    for m in list_manifests():
        if m.build is not None and not (shared_models / m.name).is_dir():
            continue  # built on first pull by edge convert (tests/test_convert_build.py)
        for f in m.files:
            p = shared_models / m.name / f.path
            assert p.is_file(), p
            assert sha256_of(p) == f.sha256, p


def test_pull_from_mirror_caches_and_is_idempotent(model_env: Path, shared_models: Path) -> None:
    folder = pull("vehicle-detection-0200")
    xml = folder / "vehicle-detection-0200.xml"
    assert xml.is_file() and xml.read_bytes() == (shared_models / "vehicle-detection-0200" / xml.name).read_bytes()
    mtime = xml.stat().st_mtime_ns
    pull("vehicle-detection-0200")
    assert xml.stat().st_mtime_ns == mtime  # verified cache hit, not copied again


def test_corrupt_cached_file_is_fetched_again(model_env: Path) -> None:
    folder = pull("yolox-nano-coco")
    onnx = folder / "yolox_nano.onnx"
    onnx.write_bytes(onnx.read_bytes()[:1000])  # truncated
    pull("yolox-nano-coco")
    assert sha256_of(onnx) == find_manifest("yolox-nano-coco").files[0].sha256


def test_wrong_sha256_in_mirror_is_rejected(tmp_path: Path, shared_models: Path) -> None:
    mirror = tmp_path / "mirror"
    shutil.copytree(shared_models / "vehicle-detection-0200", mirror / "vehicle-detection-0200")
    bin_file = mirror / "vehicle-detection-0200" / "vehicle-detection-0200.bin"
    data = bytearray(bin_file.read_bytes())
    data[100] ^= 0xFF
    bin_file.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 mismatch for vehicle-detection-0200/vehicle-detection-0200.bin"):
        pull("vehicle-detection-0200", cache_dir=tmp_path / "cache", mirror=str(mirror))
    assert not (tmp_path / "cache" / "vehicle-detection-0200" / "vehicle-detection-0200.bin").exists()


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'nope'; known models: .*vehicle-detection-0200"):
        find_manifest("nope")


def test_unreachable_upstream_is_one_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge",
            "models",
            "pull",
            "vehicle-detection-0200",
            "--mirror",
            "http://127.0.0.1:9/m",
            "--cache-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("edge: error: cannot download http://127.0.0.1:9/m/vehicle-detection-0200/")
    assert "Traceback" not in proc.stderr


def test_models_cli_pull_and_list(model_env: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "models", "pull", "mobilenet-v2-imagenet-quant"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    listing = subprocess.run([sys.executable, "-m", "edge", "models", "list"], capture_output=True, text=True)
    row = next(line for line in listing.stdout.splitlines() if line.startswith("mobilenet-v2-imagenet-quant"))
    assert row.split()[-1] == "yes"
    other = next(line for line in listing.stdout.splitlines() if line.startswith("vehicle-detection-0201"))
    assert other.split()[-1] == "no"


# -- concurrent pulls (issue 7, item 9) -------------------------------------------------------

RACE_MODEL = "vehicle-detection-0200"


def _pull_in_child(barrier: Any, cache: str, mirror: str, out: Any) -> None:
    """A separate process pulling RACE_MODEL once every puller is ready (spawned: top level)."""
    lines: list[str] = []
    barrier.wait()
    try:
        pull(RACE_MODEL, cache_dir=Path(cache), mirror=mirror, progress=lines.append)
        out.put(("ok", lines))
    except Exception as err:  # reported to the parent, which fails the test
        out.put(("error", [f"{type(err).__name__}: {err}"]))


def test_concurrent_pulls_from_threads_and_processes_share_one_fetch(tmp_path: Path, shared_models: Path) -> None:
    """Cameras starting together on an empty cache used to fail with FileNotFoundError on the shared
    ``.part`` file. Now every puller succeeds, each file is fetched once, and nothing is left over."""
    cache = tmp_path / "cache"
    n_threads, n_procs = 6, 3
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n_threads + n_procs)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_pull_in_child, args=(barrier, str(cache), str(shared_models), results))
        for _ in range(n_procs)
    ]
    for p in procs:
        p.start()

    def in_thread() -> list[str]:
        lines: list[str] = []
        barrier.wait(timeout=120)
        pull(RACE_MODEL, cache_dir=cache, mirror=str(shared_models), progress=lines.append)
        return lines

    with ThreadPoolExecutor(n_threads) as pool:
        thread_lines = [f.result(timeout=180) for f in [pool.submit(in_thread) for _ in range(n_threads)]]
    child = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [status for status, _ in child] == ["ok"] * n_procs, child
    all_lines = [ln for lines in thread_lines + [lines for _, lines in child] for ln in lines]
    manifest = find_manifest(RACE_MODEL)
    assert sorted(ln.split(" (")[0] for ln in all_lines if ln.startswith("pulling ")) == sorted(
        f"pulling {RACE_MODEL}/{f.path}" for f in manifest.files
    ), all_lines  # one fetch per file, whoever got the lock first
    folder = cache / RACE_MODEL
    for f in manifest.files:
        assert sha256_of(folder / f.path) == f.sha256
    assert sorted(p.name for p in folder.iterdir()) == sorted([".pull.lock", *(f.path for f in manifest.files)])


# -- what a pull tells the user (item 15) -----------------------------------------------------


def test_pull_says_what_and_from_where_in_plain_lines_when_not_a_terminal(model_env: Path, shared_models: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "models", "pull", "yolox-nano-coco"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    src = shared_models / "yolox-nano-coco"
    assert proc.stderr.splitlines() == [
        f"pulling yolox-nano-coco/yolox_nano.onnx (3.7 MB) from {src}",
        RegexMatch(r"done: yolox-nano-coco/yolox_nano\.onnx \(3\.7 MB in \d+\.\d s\)"),
    ]
    assert "\r" not in proc.stderr  # no progress-bar redraws in logs
    assert proc.stdout == f"yolox-nano-coco: ready in {model_env / 'yolox-nano-coco'}\n"
    again = subprocess.run(
        [sys.executable, "-m", "edge", "models", "pull", "yolox-nano-coco"], capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0 and again.stderr == ""  # a cache hit is silent


def test_pull_shows_a_progress_bar_on_a_terminal(model_env: Path) -> None:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "models", "pull", "yolox-nano-coco"],
        stdout=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    text = out.decode(errors="replace")
    assert "pulling yolox-nano-coco/yolox_nano.onnx (3.7 MB) from " in text
    assert "\r" in text and "yolox-nano-coco/yolox_nano.onnx:" in text and "3.51M" in text  # tqdm's bar


class RegexMatch:
    """Equal to any string the regex fully matches (for list comparisons)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.pattern.fullmatch(other) is not None

    def __repr__(self) -> str:
        return f"RegexMatch({self.pattern.pattern!r})"


def test_pull_removes_temp_files_of_a_killed_pull(model_env: Path) -> None:
    folder = model_env / "yolox-nano-coco"
    folder.mkdir(parents=True)
    stale = folder / ".yolox_nano.onnx.k1ll3d.part"
    stale.write_bytes(b"half a model")
    pull("yolox-nano-coco")
    assert not stale.exists()
    assert sha256_of(folder / "yolox_nano.onnx") == find_manifest("yolox-nano-coco").files[0].sha256


def _manifest_yaml(folder: Path, head: dict[str, Any]) -> Path:
    """A one-file detector manifest with ``head`` in ``folder``."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "typo-detector.yaml"
    doc = {
        "name": "typo-detector",
        "task": "detect",
        "format": "onnx",
        "backends": ["onnx"],
        "entry": "model.onnx",
        "licence": "test",
        "files": [{"path": "model.onnx", "url": "https://example.invalid/model.onnx", "sha256": "0" * 64}],
        "input": {"size": [416, 416]},
        "head": head,
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_misspelt_head_parameter_is_an_error_naming_the_manifest_and_the_key(tmp_path: Path) -> None:
    # before the typed head section, "nms_iuo" was ignored silently and NMS ran at the default IoU
    path = _manifest_yaml(tmp_path / "models", {"type": "yolox", "nms_iuo": 0.6})
    with pytest.raises(ModelError) as err:
        list_manifests(tmp_path / "models")
    assert str(err.value) == (
        f"{path}: invalid manifest: head.nms_iuo: Extra inputs are not permitted (did you mean 'nms_iou'?)"
    )


def test_head_parameter_of_the_wrong_type_is_an_error_naming_it(tmp_path: Path) -> None:
    path = _manifest_yaml(tmp_path / "models", {"type": "yolox", "strides": "8,16,32"})
    with pytest.raises(ModelError, match=rf"^{re.escape(str(path))}: invalid manifest: head\.strides: "):
        list_manifests(tmp_path / "models")


@pytest.mark.parametrize("folder", ["models", "models/converted"])
def test_every_shipped_manifest_head_is_typed_and_written_back_as_it_was(folder: str) -> None:
    """Every shipped head validates, and dumps (as ``edge convert`` writes a derived manifest)
    with only the keys the file sets: no defaults are spelled out into converted manifests."""
    import yaml

    root = Path(__file__).resolve().parents[1] / folder
    manifests = {m.name: m for m in list_manifests(root)}
    assert manifests
    for p in root.glob("*.yaml"):
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        m = manifests[doc["name"]]
        assert m.model_dump(mode="json", exclude_none=True)["head"] == doc.get("head", {}), p
    yolox = manifests.get("yolox-nano-coco")
    if yolox is not None:  # typed, with the defaults a head reads when the file leaves them out
        head = yolox.head
        assert (head.type, head.nms_iou, head.strides, head.top_k) == ("yolox", 0.45, (8, 16, 32), 5)
