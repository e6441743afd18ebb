"""A visit or anomaly row belongs to the device that made it: another device reusing its id changes nothing."""

from __future__ import annotations

from pathlib import Path

from edge.events.schema import new_event_id
from edge.fleet.store import Batch, FleetStore


def _anomaly(device: str, anomaly_id: str, state: str, ts: str) -> dict:
    return {
        "v": 2, "id": new_event_id(), "device": device, "camera": "gate", "type": "anomaly",
        "phase": "end" if state == "resolved" else "start", "ts": ts, "seq": 1,
        "attrs": {"anomaly": anomaly_id, "rule": "after-hours", "kind": "after_hours", "state": state,
                  "reason": f"{device} says {state}"},
    }  # fmt: skip


def _visit(device: str, visit_id: str, status: str, ts: str) -> dict:
    return {
        "v": 2, "id": new_event_id(), "device": device, "camera": "gate", "type": "visit",
        "phase": "end" if status == "closed" else "start", "ts": ts, "seq": 1,
        "attrs": {"visit": visit_id, "status": status, "road_in": f"{device} road", "plate": "AB12345"},
    }  # fmt: skip


def test_another_device_cannot_resolve_or_rewrite_a_victims_rows(tmp_path: Path) -> None:
    store = FleetStore(f"sqlite:///{tmp_path / 'fleet.db'}")
    aid, vid = new_event_id(), new_event_id()
    own = Batch(
        events=[], derived=[("victim", _anomaly("victim", aid, "raised", "2026-12-07T12:00:00Z")),
                            ("victim", _visit("victim", vid, "open", "2026-12-07T12:00:00Z"))],
    )  # fmt: skip
    store.write(own)
    hostile = Batch(
        events=[], derived=[("evil", _anomaly("evil", aid, "resolved", "2026-12-07T12:05:00Z")),
                            ("evil", _visit("evil", vid, "closed", "2026-12-07T12:05:00Z"))],
    )  # fmt: skip
    store.write(hostile)
    a = store.anomaly(aid)
    assert a is not None and a["origin"] == "victim" and a["state"] == "raised", a
    v = store.visit(vid)
    assert v is not None and v["origin"] == "victim" and v["status"] == "open" and v["road_in"] == "victim road", v
    # the owner still moves its own rows on
    store.write(Batch(derived=[("victim", _anomaly("victim", aid, "resolved", "2026-12-07T12:06:00Z"))]))
    a = store.anomaly(aid)
    assert a is not None and a["state"] == "resolved"
    store.close()
