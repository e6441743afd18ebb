"""Typed configuration: every problem reported with its field path, secrets kept out."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edge.config import load_config, parse_config
from edge.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK_CAM_PASSWORD", "x")
    cfg = load_config(ROOT / "deploy" / "edge.example.yaml")
    assert set(cfg.cameras) == {"rank-entry", "rank-exit"}
    assert all(c.detect.fps > 0 for c in cfg.cameras.values())
    # the taxi-rank example: entry and exit lines on named roads, and its rules
    roles = {line.role for c in cfg.cameras.values() for line in c.lines.values()}
    assert roles == {"entry", "exit"}
    kinds = {r.kind for r in cfg.rules.rules.values()}
    assert {"after_hours", "wrong_road", "overstay", "state_held", "plate_watch"} <= kinds


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


# -- hostile files (issue 7: hardening) ------------------------------------------------------


def check_cli(path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``edge config check`` as a user runs it, in a child with 1.5 GiB of address space and 60 s:
    a config that blows up memory or hangs fails the test instead of the machine."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))

    return subprocess.run(
        [sys.executable, "-m", "edge", "config", "check", *args, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
        env=env,
    )


BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "cameras:\n  gate: {url: /x.mp4, objects: {track: *i}}\n"
)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (BILLION_LAUGHS, "an alias bomb"),
        ("a: &a [1, *a]\ncameras: {gate: {url: /x.mp4}}\n", "line 1 column 4: an alias refers to the value"),
        # our loader stops it at 32 levels, or libyaml itself first (PyYAML 6.0.4 wheels): same words
        ("cameras:\n  gate:\n    url: /x.mp4\n    masks: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deep"),
        ("device_id: " + "7" * 5000 + "\ncameras: {gate: {url: /x.mp4}}\n", "line 1 column 12: integer too long"),
        (
            "cameras:\n  gate:\n    url: /x.mp4\n    plates: {regions: ['" + "(" * 5000 + ")" * 5000 + "']}\n",
            "cameras.gate.plates.regions: Value error, a custom plate regex is limited to 512 characters",
        ),
        (
            "cameras:\n  gate: {url: /x.mp4}\ndevice_id: one\ncameras:\n  yard: {url: /y.mp4}\n",
            "line 4 column 1: duplicate key 'cameras' (first at line 1)",
        ),
        (
            "cameras:\n  gate:\n    url: /x.mp4\n    zones:\n      z: {coordinates: [[0,0],[1,0],[1,1]]}\n"
            "      z: {coordinates: [[0,0],[1,0],[0,1]]}\n",
            "line 6 column 7: duplicate key 'z' (first at line 5)",
        ),
        ("x: '" + "y" * (3 << 20) + "'\n", "too large for a config file"),
    ],
    ids=["billion-laughs", "self-alias", "deep-nesting", "5000-digits", "deep-regex", "dup-top", "dup-zone", "3MB"],
)
def test_hostile_config_is_one_clear_line_exit_2(tmp_path: Path, content: str, expected: str) -> None:
    f = tmp_path / "edge.yaml"
    f.write_text(content)
    t0 = time.monotonic()
    proc = check_cli(f)
    assert time.monotonic() - t0 < 20
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"edge: error: {f}"), proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.splitlines()) <= 2  # the file line, at most one problem


@pytest.mark.parametrize(
    "value",
    ["[" * 5000 + "]" * 5000, "{a: " * 5000 + "1" + "}" * 5000, "[" * 40 + "]" * 40],
    ids=["5000-lists", "5000-mappings", "40-lists"],
)
def test_deep_nesting_is_one_line_whichever_layer_stops_it(tmp_path: Path, value: str) -> None:
    """Issue 20: libyaml (PyYAML 6.0.4 wheels) refuses 1000 levels itself, before our 32-level
    check, in its own words. The user reads the same one line either way."""
    f = tmp_path / "edge.yaml"
    f.write_text(f"cameras:\n  gate:\n    url: /x.mp4\n    masks: {value}\n")
    proc = check_cli(f)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()], proc.stderr  # one line
    assert proc.stderr.startswith(f"edge: error: {f}: line 4 column "), proc.stderr
    assert "nested too deep" in proc.stderr and "Traceback" not in proc.stderr


def test_misspelt_key_gets_did_you_mean(tmp_path: Path) -> None:
    """Issue 20: a typo got only "Extra inputs are not permitted"; now the closest field name of
    that section is offered (cameras, nested sections, rules of one kind, the top level)."""
    f = tmp_path / "edge.yaml"
    f.write_text(
        "Cameras: {}\n"
        "cameras:\n"
        "  gate:\n"
        "    url: /x.mp4\n"
        "    detect: {fsp: 5}\n"
        "    lines: {l: {points: [[0, 0.5], [1, 0.5]], in: up, roads: A}}\n"
        "    zonez: {}\n"
        "    bogus: 1\n"
        "mqtt: {hots: broker.local}\n"
        "rules:\n"
        "  rules: [{id: lot, kind: loitering, max_secondz: 30}]\n"
    )
    proc = check_cli(f)
    assert proc.returncode == 2, proc.stderr
    lines = [ln.strip() for ln in proc.stderr.splitlines()[1:]]
    for line in (
        "Cameras: Extra inputs are not permitted (did you mean 'cameras'?)",
        "cameras.gate.detect.fsp: Extra inputs are not permitted (did you mean 'fps'?)",
        "cameras.gate.lines.l.roads: Extra inputs are not permitted (did you mean 'road'?)",
        "cameras.gate.zonez: Extra inputs are not permitted (did you mean 'zones'?)",
        "mqtt.hots: Extra inputs are not permitted (did you mean 'host'?)",
        "rules.rules.lot.loitering.max_secondz: Extra inputs are not permitted (did you mean 'max_seconds'?)",
        "cameras.gate.bogus: Extra inputs are not permitted",  # nothing close: no guess
    ):
        assert line in lines, proc.stderr


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    f = tmp_path / "edge.yaml"
    f.write_text("x-base: &base {url: /x.mp4, loop: true}\ncameras:\n  gate: {<<: *base, loop: false}\n  yard: *base\n")
    with pytest.raises(ConfigError, match="x-base: Extra inputs are not permitted"):  # merge keys load fine
        load_config(f)


@pytest.mark.parametrize(
    ("section", "value"),
    [
        ("cameras.gate.reconnect.initial_delay", ".inf"),
        ("cameras.gate.reconnect.max_delay", "1e12"),
        ("cameras.gate.reconnect.stall_timeout", ".nan"),
        ("cameras.gate.reconnect.open_timeout", "1e300"),
        ("cameras.gate.tracker.max_age", ".inf"),
        ("cameras.gate.tracker.update_interval", "100000"),
        ("cameras.gate.tracker.min_hits", "10000000000"),
        ("cameras.gate.motion.max_skip", "99999999999999999999"),
        ("cameras.gate.detect.classifier_min_frames", "10000000"),
        ("mqtt.reconnect_max_delay", ".inf"),
        ("mqtt.reconnect_min_delay", "-.inf"),
        ("mqtt.drain_timeout", ".inf"),
        ("mqtt.stats_interval", "1e20"),
        ("outbox.max_bytes", "1" + "0" * 30),
    ],
)
def test_every_duration_and_count_is_finite_and_bounded(tmp_path: Path, section: str, value: str) -> None:
    """Values like these passed `config check` and then crashed the camera thread or MQTT start-up."""
    data: dict = {"cameras": {"gate": {"url": "rtsp://cam/s"}}, "mqtt": {"host": "broker"}}
    *parents, leaf = section.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = "VALUE"
    f = tmp_path / "edge.yaml"
    f.write_text(yaml.safe_dump(data).replace("VALUE", value))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(f))}: 1 problem\(s\)\n  {re.escape(section)}: "):
        load_config(f)


def test_delay_order_is_checked() -> None:
    with pytest.raises(ConfigError, match="initial_delay must not exceed max_delay"):
        parse_config({"cameras": {"gate": {"url": "rtsp://c/s", "reconnect": {"initial_delay": 60, "max_delay": 5}}}})


def test_example_config_checks_clean_as_shipped() -> None:
    env = {k: v for k, v in os.environ.items() if k != "RANK_CAM_PASSWORD"}
    proc = check_cli(ROOT / "deploy" / "edge.example.yaml", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "OK — device taxi-rank-1, cameras: rank-entry (on), rank-exit (on)" in proc.stdout


def test_missing_variable_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAM_PASS", raising=False)
    with pytest.raises(ConfigError) as info:
        parse_config({"cameras": {"gate": {"url": "${CAM_PASS}"}}}, "site.yaml")
    # one problem, not a second "url must not be empty" about the same field
    assert str(info.value) == (
        "site.yaml: 1 problem(s)\n  cameras.gate.url: environment variable ${CAM_PASS} is not set "
        "(export CAM_PASS=... or write ${CAM_PASS:-default} in the file)"
    )


def test_env_default_syntax(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAM_HOST", raising=False)
    monkeypatch.setenv("CAM_PASS", "s3cret")
    cfg = parse_config({"cameras": {"gate": {"url": "rtsp://u:${CAM_PASS:-x}@${CAM_HOST:-10.0.0.5}/s"}}})
    assert cfg.cameras["gate"].url == "rtsp://u:s3cret@10.0.0.5/s"


def test_no_env_checks_everything_but_unset_variables(tmp_path: Path) -> None:
    f = tmp_path / "site.yaml"
    f.write_text(
        "# ${IN_A_COMMENT} is not a reference\n"
        "cameras:\n  gate: {url: 'rtsp://u:${CAM_PASS}@h/s', detect: {fps: '${FPS:-5}'}}\n"
        "mqtt: {host: '${MQTT_HOST}', port: '${MQTT_PORT}', password: '${MQTT_PASSWORD}'}\n"
    )
    env = {**os.environ, "CAM_PASS": "hunter2", "MQTT_PORT": "not-a-port"}
    proc = check_cli(f, "--no-env", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"{f}: OK — device edge-1, cameras: gate (on)",
        "  not checked (--no-env): fields using ${CAM_PASS}, ${MQTT_HOST}, ${MQTT_PASSWORD}, ${MQTT_PORT}",
    ]
    assert "hunter2" not in proc.stdout + proc.stderr
    # everything else is still checked
    f.write_text(f.read_text().replace("'${FPS:-5}'", "0"))
    proc = check_cli(f, "--no-env", env=env)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"edge: error: {f}: 1 problem(s)",
        "  cameras.gate.detect.fps: Input should be greater than 0",
    ]
