"""Model registry: manifests for every shared model, pulls from the mirror, sha256 checks, errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

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
