"""Feedback: corrections stored with the event and crop they refer to, the bounded recent-event
and snapshot tables, and ``edge feedback export`` as a labelled folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from edge.commands import CommandHandler
from edge.config import CommandsConfig
from edge.events.schema import utc_iso
from edge.events.topics import Topics
from edge.feedback.store import FeedbackStore
from tests.fixtures.mqtt import sample_event
from tests.test_commands import NOW, Harness


@pytest.fixture()
def hx(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_feedback_is_stored_with_the_event_and_its_crop_then_exported(hx: Harness, tmp_path: Path) -> None:
    from edge.cli import main

    start = sample_event("cam1", 0, phase="start", attrs={"type": "car", "color": "white"})
    update = sample_event("cam1", 0, phase="update", attrs={"type": "car", "color": "white"})
    plate = sample_event("cam1", 1, type="plate", attrs={"plate": "AB123CD"})
    for e in (start, update, plate):
        hx.h.process(e)
    hx.store.put_snapshot(start.id, b"\xff\xd8start-crop")
    r1 = hx.send(
        {"id": "f1", "cmd": "feedback", "event": update.id, "field": "type", "value": "van", "note": "side door"}
    )
    r2 = hx.send({"id": "f2", "cmd": "feedback", "event": plate.id, "field": "plate", "value": "AB123CE"})
    r3 = hx.send({"id": "f3", "cmd": "feedback", "event": update.id, "field": "color", "value": "light blue"})
    assert r1 == {
        "id": "f1",
        "ok": True,
        "cmd": "feedback",
        "event": update.id,
        "field": "type",
        "old": "car",
        "new": "van",
    }
    assert r2 is not None and r2["old"] == "AB123CD" and r3 is not None and r3["ok"]
    rows = hx.store.feedback()
    assert [(r.field, r.old, r.new) for r in rows] == [
        ("type", "car", "van"),
        ("plate", "AB123CD", "AB123CE"),
        ("color", "white", "light blue"),
    ]
    assert rows[0].jpeg == b"\xff\xd8start-crop"  # the update names the track; its start crop is used
    assert rows[1].jpeg is None and json.loads(rows[0].event_json or "")["id"] == update.id
    hx.store.close()

    out = tmp_path / "export"
    assert main(["feedback", "export", str(out), "--db", str(tmp_path / "fb.sqlite3")]) == 0
    assert (out / "type" / "van" / f"{update.id}.jpg").read_bytes() == b"\xff\xd8start-crop"
    assert (out / "color" / "light_blue" / f"{update.id}.jpg").is_file()
    labels = [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()]
    assert [(x["event"], x["field"], x["old"], x["new"], x["image"]) for x in labels] == [
        (update.id, "type", "car", "van", f"type/van/{update.id}.jpg"),
        (plate.id, "plate", "AB123CD", "AB123CE", None),
        (update.id, "color", "white", "light blue", f"color/light_blue/{update.id}.jpg"),
    ]
    assert labels[0]["ts"] == utc_iso(NOW) and labels[0]["note"] == "side door"


def test_recent_event_index_is_bounded(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite3", recent_events=100, snapshots=10)
    events = [sample_event("cam1", i) for i in range(1000)]
    t0 = time.perf_counter()
    for e in events:
        store.record_event(e)
        store.put_snapshot(e.id, b"jpg")
    per_event = (time.perf_counter() - t0) / len(events)
    assert store.event(events[-1].id) is not None and store.event(events[0].id) is None
    n_events = store._db.execute("SELECT COUNT(*) FROM recent_events").fetchone()[0]
    n_snaps = store._db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
    assert 100 <= n_events < 100 + 256 and 10 <= n_snaps < 10 + 256
    assert per_event < 0.01, per_event  # cheap enough to run on every event


def test_export_cli_finds_the_database_beside_the_outbox(tmp_path: Path) -> None:
    from edge.cli import main

    cfg = tmp_path / "edge.yaml"
    cfg.write_text(f"cameras: {{cam1: {{url: a.mp4}}}}\noutbox: {{path: {tmp_path / 'state' / 'outbox.db'}}}\n")
    store = FeedbackStore(tmp_path / "state" / "outbox.feedback.sqlite3")
    ev = sample_event("cam1", 0)
    store.record_event(ev)
    store.put_snapshot(ev.id, b"\xff\xd8crop")
    hx = CommandHandler(CommandsConfig(), Topics("edge", "dev1"), lambda t, p: None, store)
    cmd = {"id": "f", "cmd": "feedback", "event": ev.id, "field": "color", "value": "red"}
    assert (hx.handle(json.dumps(cmd).encode()) or {}).get("ok") is True
    store.close()
    assert main(["feedback", "export", str(tmp_path / "out"), "--config", str(cfg)]) == 0
    assert (tmp_path / "out" / "color" / "red" / f"{ev.id}.jpg").read_bytes() == b"\xff\xd8crop"


def test_export_cli_names_a_missing_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import main

    assert main(["feedback", "export", str(tmp_path / "out"), "--db", str(tmp_path / "none.sqlite3")]) == 2
    assert "feedback database not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "folder"), [("light blue", "light_blue"), ("../../etc", "etc"), ("..", "_"), ("AB-123.cd", "AB-123.cd")]
)
def test_class_values_become_safe_folder_names(value: str, folder: str) -> None:
    from edge.feedback.export import folder_name

    assert folder_name(value) == folder
