"""Rule configuration is validated up front; errors name the rule and the field."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from edge.config import load_config, parse_config
from edge.errors import ConfigError
from edge.rules import RulesConfig

CAM = {"gate": {"url": "clip.mp4"}}


def problems(rules: object) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config({"cameras": CAM, "rules": rules})
    return str(err.value)


def test_errors_name_the_rule_and_the_field() -> None:
    text = problems([
        {"id": "late", "kind": "after_hours", "open": {"mon-fri": "07:00-25:00"}},
        {"id": "taxi", "kind": "state_held", "label": "no_taxi"},
        {"id": "bad-re", "kind": "condition", "when": {"field": "attrs.plate", "op": "regex", "value": "(CA"}},
        {"id": "tz", "kind": "overstay", "max_seconds": 60, "timezone": "Mars/Olympus"},
        {"id": "sev", "kind": "plate_watch", "severity": "huge"},
    ])  # fmt: skip
    assert "rules.rules.late.after_hours.open: Value error, bad time in '07:00-25:00'" in text
    assert "rules.rules.taxi.state_held.minutes: Field required" in text
    assert "rules.rules.bad-re.condition.when: Value error, bad regex '(CA'" in text
    assert "rules.rules.tz.overstay.timezone: Value error, unknown time zone 'Mars/Olympus'" in text
    assert "rules.rules.sev.plate_watch.severity" in text


def test_unknown_kind_unknown_field_duplicate_id_and_missing_id() -> None:
    assert "rules.rules.x: Input tag 'teleport' found using 'kind' does not match" in problems(
        [{"id": "x", "kind": "teleport"}])  # fmt: skip
    assert "rules.rules.w.plate_watch.colour: Extra inputs are not permitted" in problems(
        [{"id": "w", "kind": "plate_watch", "colour": "red"}])  # fmt: skip
    assert "duplicate rule id 'w'" in problems([{"id": "w", "kind": "plate_watch"}] * 2)
    assert "rules.rules.#0.plate_watch.id: Field required" in problems([{"kind": "plate_watch"}])
    assert "exactly one of all, any, not" in problems(
        [{"id": "c", "kind": "condition", "when": {"all": [], "field": "camera"}}])  # fmt: skip


def test_a_list_or_a_mapping_and_yaml_times(tmp_path: Path) -> None:
    cfg_file = tmp_path / "edge.yaml"
    cfg_file.write_text(
        """
cameras: {gate: {url: clip.mp4}}
rules:
  timezone: Africa/Johannesburg
  visits: {plate_max_distance: 2, unresolved_after: 3600}
  rules:
    - id: after-hours
      kind: after_hours
      open: {mon-fri: "07:00-19:00", sat: "08:00-12:00", exceptions: {2026-12-25: closed}}
    - {id: home-time, kind: no_exit_by, deadline: 18:00}
"""
    )
    app = load_config(cfg_file)
    assert app.rules.timezone == "Africa/Johannesburg" and app.rules.visits.plate_max_distance == 2
    assert list(app.rules.rules) == ["after-hours", "home-time"]
    assert app.rules.rules["home-time"].deadline == time(18, 0)  # type: ignore[union-attr]
    assert parse_config({"cameras": CAM}).rules.rules == {}
    # a dump validates back to the same config (reload paths re-validate)
    assert RulesConfig.model_validate(app.rules.model_dump()) == app.rules


def test_rules_file_include(tmp_path: Path) -> None:
    inc = tmp_path / "rules.yaml"
    inc.write_text(yaml.safe_dump({"rules": [{"id": "roads", "kind": "wrong_road", "allowed": {"A": ["B"]}}]}))
    cfg = RulesConfig.model_validate({"rules": [{"id": "watch", "kind": "plate_watch"}], "rules_file": str(inc)})
    assert list(cfg.rules) == ["watch", "roads"]
    inc.write_text(yaml.safe_dump([{"id": "roads", "kind": "wrong_road"}]))
    with pytest.raises(ValidationError, match=r"rules\.roads\.wrong_road\.allowed"):
        RulesConfig.model_validate({"rules_file": str(inc)})
    with pytest.raises(ValidationError, match="rules_file"):
        RulesConfig.model_validate({"rules_file": str(tmp_path / "missing.yaml")})
