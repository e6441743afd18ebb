"""``edge demo`` as a user runs it: both parts, lines in video order, a plate read and anomalies."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge.events.payloads import PAYLOADS, parse_attrs, unknown_keys
from tests.conftest import ROOT

LINE = re.compile(r"^(\d\d):(\d\d)  (\S+)  (.*)$")
PLATE = "WA56660"  # the gate scene's photo, openalpr/eu/eu10.jpg


def demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "demo", "--fast", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def by_camera(lines: list[str]) -> dict[str, list[tuple[int, str]]]:
    """Printed lines per camera as (seconds into its video, text)."""
    out: dict[str, list[tuple[int, str]]] = {}
    for ln in lines:
        m = LINE.match(ln)
        assert m, f"not a demo line: {ln!r}"
        out.setdefault(m[3], []).append((int(m[1]) * 60 + int(m[2]), m[4]))
    return out


@pytest.mark.usefixtures("model_env")
def test_demo_lines_in_video_order_with_a_plate_and_anomalies() -> None:
    proc = demo()
    parts = by_camera(proc.stdout.splitlines())
    assert list(parts) == ["lot", "gate"], proc.stdout
    for camera, lines in parts.items():
        # late events (a crossing judged once the track is confirmed) wait for their turn
        assert [s for s, _ in lines] == sorted(s for s, _ in lines), (camera, lines)
    lot = [text for _, text in parts["lot"]]
    assert sum(t.endswith(")") and " start (first seen at " in t for t in lot) == 4, lot
    assert sum(" end after " in t for t in lot) == 4, lot
    assert [t.split()[-1] for t in lot if " line middle " in t] == ["in", "out", "in", "out"], lot
    assert sum(t.startswith("visit ") and t.endswith(": open car in via lot") for t in lot) == 2, lot

    gate = [text for _, text in parts["gate"]]
    assert any(t.endswith(f" plate {PLATE}") for t in gate), gate
    assert any(t.startswith("visit ") and f" {PLATE} in via gate" in t for t in gate), gate
    # the README's promise: "truck WA56660 entered via gate at 14:05, after hours (...)"
    after = [t for t in gate if t.startswith("anomaly ") and ": raised after-hours: " in t]
    assert len(after) == 1 and f"{PLATE} entered via gate at 14:05, after hours" in after[0], gate
    # waiting at the barrier over 3 s raises one anomaly, backing away resolves that same one
    raised = [t.split(":")[0] for t in gate if ": raised waiting: " in t and "in zone barrier" in t]
    resolved = [t.split(":")[0] for t in gate if ": resolved waiting: " in t]
    assert len(raised) == 1 and resolved == raised, gate
    assert "position in the video" in proc.stderr and "gate: a car drives up to a closed gate" in proc.stderr


@pytest.mark.usefixtures("model_env")
def test_demo_json_events_in_video_order() -> None:
    events = [json.loads(ln) for ln in demo("--json").stdout.splitlines()]
    for camera in ("lot", "gate"):
        # events made on a rule engine tick carry no pos (the demo places them by ts)
        pos = [e["pos"] for e in events if e["camera"] == camera and e.get("pos") is not None]
        assert len(pos) > 10 and pos == sorted(pos), (camera, pos)
    assert any(e["type"] == "plate" and e["attrs"]["plate"] == PLATE for e in events)
    assert {e["attrs"]["state"] for e in events if e["type"] == "anomaly"} == {"raised", "resolved"}
    # every event's attrs is its type's typed payload, with no key the contract does not define
    assert {"track", "plate", "line", "zone", "visit", "anomaly", "count"} <= {e["type"] for e in events}
    for e in events:
        parse_attrs(e["type"], e.get("attrs", {}), PAYLOADS[e["type"]])
        assert not unknown_keys(e["type"], e.get("attrs", {})), e


@pytest.mark.usefixtures("model_env")
def test_demo_without_the_gate_photo_plays_the_lot(tmp_path: Path, car_video: Path) -> None:
    # what a device image with only the lot clip gets: the lot, and one line on why no gate
    (tmp_path / "data" / "videos").mkdir(parents=True)
    (tmp_path / "data" / "videos" / car_video.name).symlink_to(car_video)
    proc = demo(env={"EDGE_SHARED": str(tmp_path)})
    assert list(by_camera(proc.stdout.splitlines())) == ["lot"]
    assert f"gate: skipped, its photo {tmp_path}/data/openalpr/eu/eu10.jpg is not here" in proc.stderr
