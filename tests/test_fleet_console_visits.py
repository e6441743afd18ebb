"""One console row per visit when the device's rule engine and the fleet's both make it (issue 20
must-fix 6), through real ingest (mosquitto, the fleet engine) on SQLite and PostgreSQL: the
stored rows stay each engine's own, the console, the API, the header count and the export list
each visit once, with its roads and where it came from."""

from __future__ import annotations

import json
from typing import Any

import requests

from edge.events.schema import Event
from edge.fleet.config import parse_fleet_config
from edge.fleet.export import rows
from edge.fleet.migrations.m001_initial import visits
from edge.fleet.service import Fleet
from edge.fleet.store import FleetStore
from tests.fixtures.mqtt import Broker, free_port
from tests.test_fleet_fixtures import Publisher, as_device, line_event, postgres, replay_events, wait_until
from tests.test_fleet_web_guard import database

__all__ = ["database", "postgres", "replay_events"]  # fixtures used here


def device_visit(entry: dict[str, Any], visit_id: str) -> dict[str, Any]:
    """The ``visit`` start a device's own engine sends for an entry crossing (its exit is elsewhere)."""
    attrs = {
        "visit": visit_id, "status": "open", "entry_camera": entry["camera"], "road_in": entry["attrs"]["road"],
        "time_in": entry["ts"], "entry_track": entry["track"], "plate": entry["attrs"]["plate"], "type": "car",
        "evidence": [entry["id"]],
    }  # fmt: skip
    e = Event(device=entry["device"], camera=entry["camera"], type="visit", phase="start", ts=entry["ts"], attrs=attrs)
    return {**json.loads(e.to_json()), "seq": 1}


def test_one_row_per_visit_made_by_device_and_fleet(
    broker: Broker, database: str, replay_events: list[dict[str, Any]]
) -> None:
    port = free_port()
    cfg = parse_fleet_config(
        {
            "database": database,
            "mqtt": {"host": broker.host, "port": broker.port},
            "rules": {"enabled": True, "device_id": "fleet"},
            "web": {"port": port, "auth_header": "X-Remote-User"},
        }
    )
    fleet = Fleet(cfg).start()
    pub = Publisher(broker)
    try:
        # site A sends what its cameras saw and the visits its own engine made of it; the fleet's
        # engine makes the same visits from the same crossings
        events = as_device(replay_events, "site-a")
        n = len({e["attrs"]["visit"] for e in events if e["type"] == "visit"})
        # a car enters at A's north gate (A's engine opens a visit) and leaves at B's south gate
        entry = line_event(
            "site-a", "north", "2026-11-22T09:00:00.000Z", track=7, direction="in", role="entry", plate="CA123456"
        )
        leave = line_event(
            "site-b", "south", "2026-11-22T09:10:00.000Z", track=3, direction="out", role="exit", plate="CA123456"
        )
        pub.events([*events, entry, device_visit(entry, "ef" * 16), leave])
        store = fleet.store
        wait_until(lambda: len(store.visits(merge=False)) == 2 * n + 2, what="every engine's visits")
        wait_until(lambda: any(v["exit_device"] == "site-b" for v in store.visits()), what="the crossing closed")

        shown = store.visits()
        assert len(shown) == n + 1 and store.summary()["visits"] == n + 1
        crossing = next(v for v in shown if v["exit_device"] == "site-b")
        assert (crossing["origin"], crossing["also"], crossing["status"]) == ("fleet", ["site-a"], "closed")
        assert (crossing["road_in"], crossing["road_out"]) == ("north", "south")
        on_site = [v for v in shown if v is not crossing]
        assert all((v["origin"], v["also"], v["road_in"]) == ("site-a", ["fleet"], "lot") for v in on_site), on_site
        assert store.visits(device="site-b") == [crossing]  # filters see the merged row
        assert len(rows(store, "visits", None, None)) == n + 1  # the export too

        api = requests.get(f"http://127.0.0.1:{port}/api/visits", headers={"X-Remote-User": "op"}, timeout=10).json()
        assert sorted((v["origin_kind"], v["road_in"], v["road_out"]) for v in api) == sorted(
            [("fleet", "north", "south")] + [("device", "lot", None)] * n
        )
    finally:
        pub.close()
        fleet.stop()


def test_merged_rows_order_and_limit(database: str) -> None:
    """Newest entry first, rows without an entry time last, ``limit`` over the merged rows."""
    store = FleetStore(database)
    try:
        with store.engine.begin() as conn:
            for i in range(4):  # visit i made by the device (open) and by the fleet (closed after it left)
                key = {"device": "d", "time_in": 1000.0 + i, "evidence": f"{i:032x}", "updated": 1.0, "body": "{}"}
                conn.execute(visits.insert().values(id=f"d{i}", origin="d", status="open", **key))
                conn.execute(visits.insert().values(id=f"f{i}", origin="fleet", status="closed", **key))
            conn.execute(visits.insert().values(id="x", origin="d", device="d", status="open", updated=1.0, body="{}"))
        assert [v["id"] for v in store.visits()] == ["f3", "f2", "f1", "f0", "x"]
        assert [v["id"] for v in store.visits(limit=5)] == ["f3", "f2", "f1", "f0", "x"]
        assert [(v["id"], v["also"]) for v in store.visits(limit=2)] == [("f3", ["d"]), ("f2", ["d"])]
        assert len(store.visits(merge=False)) == 9 and store.summary()["visits"] == 5
    finally:
        store.close()
