"""``edge fleet``'s config goes through the device config's hardened loader (issue 21, item 6):
``${VAR}`` is expanded in the parsed values, never in the YAML text, so a secret's ``#``, ``: ``
or newline stays part of it and cannot add keys; a duplicate key is an error; bad input ends in
exit 2 with the problem named and no secret or traceback on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import main
from edge.fleet.config import load_fleet_config
from tests.conftest import ROOT

CONFIG = """\
database: sqlite:///fleet.sqlite3
mqtt:
  host: broker.example
  username: fleet
  password: ${FLEET_MQTT_PASSWORD}
web:
  users: {alice: "${ALICE_HASH:-scrypt$x}"}
"""


@pytest.mark.parametrize(
    "secret",
    [
        "abc #def",
        "a: b",
        "x\nweb:\n  host: 0.0.0.0\n  auth_header: X-User",
        "'quoted' \"both\" {braces} [list] &anchor *alias",
    ],
)
def test_a_secret_is_a_value_whatever_it_holds(secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "fleet.yaml"
    f.write_text(CONFIG)
    monkeypatch.setenv("FLEET_MQTT_PASSWORD", secret)
    cfg = load_fleet_config(f)
    assert cfg.mqtt.password is not None and cfg.mqtt.password.get_secret_value() == secret
    assert (cfg.web.host, cfg.web.auth_header) == ("127.0.0.1", None)  # nothing injected
    assert cfg.web.users == {"alice": "scrypt$x"}  # ${VAR:-default}


def _run(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["fleet", "--config", str(config)])
    return code, capsys.readouterr().err


def test_duplicate_key_is_an_error_naming_it(tmp_path: Path) -> None:
    f = tmp_path / "fleet.yaml"
    f.write_text("web:\n  port: 8080\nmqtt: {host: 127.0.0.1, port: 9}\nweb:\n  host: 0.0.0.0\n")
    # a process with a timeout: a loader that let the file through would start the fleet and run
    cmd = [sys.executable, "-m", "edge", "fleet", "--config", str(f)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 2
    assert res.stderr == f"edge: error: {f}: line 4 column 1: duplicate key 'web' (first at line 1)\n"


def test_bad_fields_are_named_without_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_MQTT_PASSWORD", "hunter2: #s3cret")
    f = tmp_path / "fleet.yaml"
    f.write_text(CONFIG.replace("host: broker.example", "host: broker.example\n  port: 99999"))
    code, err = _run(f, capsys)
    assert code == 2 and "Traceback" not in err
    assert "mqtt.port: Input should be less than or equal to 65535" in err
    assert "hunter2" not in err and "s3cret" not in err

    monkeypatch.delenv("FLEET_MQTT_PASSWORD")
    f.write_text(CONFIG)
    code, err = _run(f, capsys)
    assert code == 2 and "mqtt.password: environment variable ${FLEET_MQTT_PASSWORD} is not set" in err

    f.write_text("mqtt: [unclosed\n")
    code, err = _run(f, capsys)
    assert code == 2 and err.count("\n") == 1 and "is not valid YAML" in err
