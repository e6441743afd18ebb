"""Typed configuration: every problem reported with its field path, secrets kept out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import load_config, parse_config
from edge.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_CAM_PASSWORD", "x")
    cfg = load_config(ROOT / "deploy" / "edge.example.yaml")
    assert cfg.cameras
    assert all(c.detect.fps > 0 for c in cfg.cameras.values())


def test_every_problem_is_listed_with_its_path() -> None:
    data = {
        "cameras": {
            "gate": {
                "url": "ftp://cam/stream",
                "detect": {"fps": 0},
                "zones": {"entry": {"coordinates": [[0, 0], [1, 0]]}},
                "objects": {"filter": {"min_area": 0.5, "max_area": 0.1}},
                "bogus": True,
            }
        },
        "mqtt": {"port": 70000},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, "site.yaml")
    text = str(info.value)
    for path in (
        "cameras.gate.url",
        "cameras.gate.detect.fps",
        "cameras.gate.zones.entry.coordinates",
        "cameras.gate.objects.filter",
        "cameras.gate.bogus",
        "mqtt.host",
        "mqtt.port",
    ):
        assert path in text, path
    assert text.startswith("site.yaml: 7 problem(s)")


def test_no_cameras_is_an_error() -> None:
    with pytest.raises(ConfigError, match="cameras"):
        parse_config({"cameras": {}})


def test_env_substitution_and_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_PASS", "s3cret")
    cfg = parse_config({"cameras": {"gate": {"url": "rtsp://admin:${CAM_PASS}@10.0.0.5/s1"}}})
    assert cfg.cameras["gate"].url == "rtsp://admin:s3cret@10.0.0.5/s1"
    with pytest.raises(ConfigError, match=r"cameras.gate.url: environment variable \$\{NOPE\} is not set"):
        parse_config({"cameras": {"gate": {"url": "rtsp://a:${NOPE}@h/s"}}})


def test_secrets_never_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            {
                "cameras": {"gate": {"url": "rtsp://admin:hunter2@h/s", "detect": {"fps": -1}}},
                "mqtt": {"host": "b", "password": 5},
            }
        )
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("cameras: [\n", "is not valid YAML"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("cameras:\n  gate:\n    url: /x.mp4\n    detect: {fps: fast}\n", "cameras.gate.detect.fps"),
        ("device_id: 'bad id!'\ncameras:\n  gate: {url: /x.mp4}\n", "device_id"),
    ],
)
def test_config_check_cli_one_clear_error(tmp_path: Path, content: str, expected: str) -> None:
    f = tmp_path / "edge.yaml"
    f.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "edge", "config", "check", str(f)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_check_cli_missing_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "config", "check", str(tmp_path / "nope.yaml")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"edge: error: config file not found: {tmp_path / 'nope.yaml'}"
