"""``edge config check`` refuses rules that could never fire or could hang the appliance (issue 20
item 7, issue 21 item 11): a camera, zone, line or road the config does not have, a class label
its classifier cannot report, a vehicle type no model produces, a catastrophic regex. Exit 2 and
one line per problem, naming the rule and the field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from edge.config import PlateListsConfig, parse_config
from edge.errors import ConfigError
from edge.rules.references import PLATE_LISTS
from tests.test_config import check_cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "deploy" / "edge.example.yaml"

SITE = """
cameras:
  gate:
    url: clip.mp4
    lines:
      gate-in: {points: [[0, 0.5], [1, 0.5]], in: up, road: Bypass Street, role: entry}
      gate-out: {points: [[0, 0.6], [1, 0.6]], in: down, road: Main Road, role: exit}
    zones:
      kerb: {coordinates: [[0, 0], [1, 0], [1, 1], [0, 1]]}
rules:
"""


def check(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(text)
    proc = check_cli(cfg, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln.strip() for ln in proc.stderr.splitlines()[1:]]  # after "edge: error: FILE: N problem(s)"
    return proc.returncode, lines


def test_unknown_cameras_zones_lines_roads_and_types_are_errors_naming_rule_and_field(tmp_path: Path) -> None:
    rules = """
  - {id: loiter, kind: loitering, cameras: [gate, yard], zones: [kerb, dock], max_seconds: 60}
  - {id: full, kind: occupancy, zone: bay, capacity: 2}
  - {id: roads, kind: wrong_road, allowed: ["Bypass Street->Main Road", "Bypass Street->Statoin Road"]}
  - {id: heavy, kind: overstay, max_seconds: 600, types: [lorry]}
  - {id: taxi, kind: state_held, label: cab, minutes: 5}
  - {id: watch, kind: plate_watch, list: blacklist}
  - id: red
    kind: condition
    when: {all: [{field: attrs.line, op: eq, value: gate-middle}, {field: camera, op: in, value: [gate, back]}]}
"""
    rc, lines = check(tmp_path, SITE + rules)
    assert rc == 2
    assert set(PLATE_LISTS) == set(PlateListsConfig.model_fields) - {"max_distance"}
    assert lines == [
        "rules.rules.loiter.loitering.cameras[1]: unknown camera 'yard'; cameras: gate",
        "rules.rules.loiter.loitering.zones[1]: 'dock' is not a zone of camera gate; known: kerb",
        "rules.rules.full.occupancy.zone: 'bay' is not a zone of camera gate; known: kerb",
        "rules.rules.roads.wrong_road.allowed.'Bypass Street'[1]: 'Statoin Road' is not a road of an entry or "
        "exit line (lines.*.road) or zone; known: Bypass Street, Main Road",
        "rules.rules.heavy.overstay.types[0]: 'lorry' is not a vehicle type of camera gate; "
        "known: bicycle, bus, car, motorcycle, truck, unknown, van",
        "rules.rules.taxi.state_held.label: state 'cab' never occurs: no camera it applies to (camera gate) runs "
        "a whole-frame classifier (detect.classifier_model)",
        "rules.rules.watch.plate_watch.list: 'blacklist' is not a plate list; known: allow, watch",
        "rules.rules.red.condition.when.all[0].value: 'gate-middle' is not a line of camera gate (attrs.line); "
        "known: gate-in, gate-out",
        "rules.rules.red.condition.when.all[1].value[1]: 'back' is not a camera (camera); known: gate",
    ]


def test_a_catastrophic_regex_is_refused(tmp_path: Path) -> None:
    rules = """
  - {id: plates, kind: condition, when: {field: attrs.plate, op: regex, value: "^(a+)+$"}}
  - {id: alt, kind: condition, when: {field: attrs.plate, op: regex, value: "^(CA|CAA)+$"}}
  - {id: ok, kind: condition, when: {field: attrs.plate, op: regex, value: "^(CA|CF)[0-9]{3,6}$"}}
"""
    rc, lines = check(tmp_path, SITE + rules)
    assert rc == 2 and len(lines) == 2, lines
    assert lines[0].startswith("rules.rules.plates.condition.when: Value error, regex '^(a+)+$' nests a quantifier")
    assert "exponential time" in lines[0]
    assert lines[1].startswith("rules.rules.alt.condition.when: Value error, regex '^(CA|CAA)+$' repeats an alter")


def test_a_valid_site_checks_clean(tmp_path: Path) -> None:
    rules = """
  - {id: loiter, kind: loitering, cameras: [gate], zones: [kerb], types: [car, van], max_seconds: 60}
  - {id: roads, kind: wrong_road, allowed: {Bypass Street: [Main Road]}, by_type: {truck: {Bypass Street: []}}}
  - {id: c, kind: condition, when: {any: [{field: attrs.zone, op: eq, value: kerb}, {field: attrs.road_in, op: ne, value: Main Road}]}}
"""  # noqa: E501
    rc, lines = check(tmp_path, SITE + rules)
    assert rc == 0, lines


def test_the_example_as_issued_names_a_label_its_classifier_does_not_have(tmp_path: Path, shared_models: Path) -> None:
    """``label: no_taxi`` with the ImageNet classifier: the labels come from the registry's labels file
    (found in the mirror, no weights loaded), and the message suggests the taxi class."""
    text = EXAMPLE.read_text().replace("label: none", "label: no_taxi")
    text = text.replace('classifier_labels: ["cab, hack, taxi, taxicab"]', "classifier_labels: [taxi]")
    env = {k: v for k, v in os.environ.items() if k != "RANK_CAM_PASSWORD"}
    env.update(EDGE_MODEL_MIRROR=str(shared_models), EDGE_MODEL_CACHE=str(tmp_path / "cache"))
    rc, lines = check(tmp_path, text, env)
    assert rc == 2
    assert lines == [
        "cameras.rank-exit.detect.classifier_labels[0]: 'taxi' is not a label of model mobilenet-v2-imagenet-quant "
        "(camera rank-exit); labels include 'cab, hack, taxi, taxicab' (1001 labels)",
        "rules.rules.empty-rank.state_held.label: 'no_taxi' is not one of detect.classifier_labels of camera "
        "rank-exit (nor 'none'); known: none, taxi",
    ]
    # without classifier_labels the rule's label is checked against the model's own labels
    text = text.replace("      classifier_labels: [taxi]", "")
    rc, lines = check(tmp_path, text, env)
    assert rc == 2 and lines == [
        "rules.rules.empty-rank.state_held.label: 'no_taxi' is not a label of model mobilenet-v2-imagenet-quant "
        "(camera rank-exit); labels include 'cab, hack, taxi, taxicab' (1001 labels)"
    ]


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def test_the_readme_rules_block_is_valid_against_the_example(
    monkeypatch: pytest.MonkeyPatch, shared_models: Path, tmp_path: Path
) -> None:
    """The README's excerpt, laid over the example it excerpts, passes every check; with the old
    ``no_taxi`` label it would not."""
    monkeypatch.setenv("EDGE_MODEL_MIRROR", str(shared_models))
    monkeypatch.setenv("EDGE_MODEL_CACHE", str(tmp_path))
    readme = (ROOT / "README.md").read_text()
    block = next(b.split("```", 1)[0] for b in readme.split("```yaml\n")[1:] if "empty-rank" in b)
    data = _merge(yaml.safe_load(EXAMPLE.read_text()), yaml.safe_load(block))
    cfg = parse_config(data)
    assert cfg.rules.rules["empty-rank"].label == "none"  # type: ignore[union-attr]
    data["rules"]["rules"][-1]["label"] = "no_taxi"
    with pytest.raises(ConfigError, match=r"rules\.rules\.empty-rank\.state_held\.label: 'no_taxi' is not one of"):
        parse_config(data)


def test_a_model_cache_path_the_os_refuses_is_not_a_crash(tmp_path: Path) -> None:
    """Label look-ups stat files under models.cache_dir: a name too long for the OS means "not pulled yet"."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data.setdefault("models", {})["cache_dir"] = str(tmp_path / ("x" * 400))
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(yaml.safe_dump(data))
    proc = check_cli(cfg, "--no-env")
    assert "unexpected error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
