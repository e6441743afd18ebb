"""Loitering on a real replay (issue 20): the rule engine behind ``edge replay`` on the parking-lot
video, a zone over the whole lot and ``{kind: loitering, max_seconds: 2}``. Each car's track
coasts ``tracker.max_age`` s after its last detection before its zone end is reported (with the
last-sighting time): no anomaly may be raised after the car left, none may be resolved or updated
before it was raised, and no reason may claim a longer stay than was seen."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

LIMIT = 2.0
CONFIG = f"""
cameras:
  lot:
    url: replaced-by-replay.mp4
    tracker: {{update_interval: 0.5}}   # frequent sightings: the rule judges on them, not the clock
    zones:
      lot: {{coordinates: [[0, 0], [1, 0], [1, 1], [0, 1]]}}
rules:
  rules:
    - {{id: loiter, kind: loitering, max_seconds: {LIMIT:g}}}
"""


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.mark.usefixtures("model_env")
def test_loitering_on_a_real_replay_never_outlives_the_car(car_video: Path, tmp_path: Path) -> None:
    cfg, out = tmp_path / "loiter.yaml", tmp_path / "events.jsonl"
    cfg.write_text(CONFIG)
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "replay", str(car_video), "--config", str(cfg), "--events-out", str(out),
         "-q", "--start-time", "2026-12-07T12:53:00Z"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    entered: dict[str, float] = {}
    left: dict[str, float] = {}
    dwell: dict[str, float] = {}
    for e in events:
        if e["type"] == "zone":
            subject = f"zone:{e['camera']}:{e['attrs']['zone']}:{e['track']}"
            (entered if e["phase"] == "start" else left)[subject] = epoch(e["ts"])
            if e["phase"] == "end":  # the pipeline's dwell runs to the last sighting
                dwell[subject] = e["attrs"]["dwell"]
                assert abs(dwell[subject] - (left[subject] - entered[subject])) < 0.02, e
    anomalies: dict[str, list[dict]] = {}
    for e in events:
        if e["type"] == "anomaly":
            anomalies.setdefault(e["attrs"]["anomaly"], []).append(e)
    over = {s for s in left if dwell[s] > LIMIT}
    assert over, "the video should have stays over the limit"
    assert {a[0]["attrs"]["subject"] for a in anomalies.values()} == over
    for changes in anomalies.values():
        raised = changes[0]
        subject = raised["attrs"]["subject"]
        assert raised["attrs"]["state"] == "raised"
        assert epoch(raised["ts"]) <= left[subject], f"raised after the car left: {raised} / left {left[subject]}"
        for later in changes[1:]:
            assert epoch(later["ts"]) >= epoch(raised["ts"]), f"{later['attrs']['state']} before raised: {changes}"
        said = float(re.search(r"for ([\d.]+) s", raised["attrs"]["reason"]).group(1))  # type: ignore[union-attr]
        assert LIMIT <= said <= dwell[subject], raised["attrs"]["reason"]  # rounded down to 0.1 s
        assert said <= epoch(raised["ts"]) - entered[subject] + 1e-6
        assert changes[-1]["attrs"]["state"] == "resolved"
