"""``edge fleet`` ingest against a real mosquitto and a real PostgreSQL (and SQLite): two devices'
replayed events, duplicates stored once, a visit that enters at one device and leaves at another,
two workers sharing the load through an MQTT shared subscription."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from edge.fleet.config import parse_fleet_config
from edge.fleet.export import rows, to_csv
from edge.fleet.service import Fleet
from edge.fleet.store import Batch, FleetStore
from edge.fleet.web.auth import hash_password, verify_password
from tests.fixtures.mqtt import Broker
from tests.test_fleet_fixtures import Postgres, Publisher, as_device, line_event, postgres, replay_events, wait_until

__all__ = ["postgres", "replay_events"]  # fixtures used here


def fleet_config(broker: Broker, database: str, **extra: Any) -> Any:
    mqtt = {"host": broker.host, "port": broker.port, **extra.pop("mqtt", {})}
    return parse_fleet_config({"database": database, "mqtt": mqtt, "web": {"enabled": False}, **extra})


def test_two_devices_duplicates_and_a_visit_across_devices(
    broker: Broker, postgres: Postgres, replay_events: list[dict[str, Any]]
) -> None:
    rules = {"enabled": True, "device_id": "fleet", "rules": [{"id": "watch", "kind": "plate_watch"}]}
    fleet = Fleet(fleet_config(broker, postgres.database(), rules=rules)).start(serve=False)
    pub = Publisher(broker)
    try:
        dev_a, dev_b = as_device(replay_events, "site-a"), as_device(replay_events, "site-b")
        pub.events(dev_a)
        pub.events(dev_b)
        pub.events(dev_a[: len(dev_a) // 2])  # redelivered after a reconnect: same ids
        # one car: entry at site A's north gate, exit at site B's south gate 10 min later
        entry = line_event(
            "site-a", "north", "2026-11-22T09:00:00.000Z", track=7, direction="in", role="entry", plate="CA123456"
        )
        leave = line_event(
            "site-b", "south", "2026-11-22T09:10:00.000Z", track=3, direction="out", role="exit", plate="CA123457"
        )
        pub.events([entry, leave, entry])
        pub.raw("edge/site-a/status", "online", retain=True)
        pub.raw("edge/site-a/stats", json.dumps({"cameras": {"gate": {"up": True}}, "outbox": {"depth": 3}}))
        store, total = fleet.store, 2 * len(replay_events) + 2
        wait_until(lambda: store.count_events() >= total and fleet.ingest.idle(), what=f"{total} events")
        wait_until(lambda: any(d["stats"] for d in store.devices()), what="stats")
        assert store.count_events() == total  # duplicates stored once
        assert store.count_events("site-a") == store.count_events("site-b") == len(replay_events) + 1
        with store.engine.connect() as c:  # the database itself refuses a second copy
            assert c.execute(sa.text("SELECT count(DISTINCT id) FROM events")).scalar() == total

        device_visits = [v for v in store.visits() if v["origin"] != "fleet"]
        n = len({e["attrs"]["visit"] for e in replay_events if e["type"] == "visit"})
        assert sorted(v["device"] for v in device_visits) == ["site-a"] * n + ["site-b"] * n
        crossing = [v for v in store.visits(origin="fleet") if v["exit_device"] == "site-b"]
        assert len(crossing) == 1, store.visits(origin="fleet")
        v = crossing[0]
        assert (v["device"], v["entry_camera"], v["exit_camera"], v["status"]) == (
            "site-a", "site-a/north", "site-b/south", "closed"
        )  # fmt: skip
        assert v["plate"] == "CA123456" and v["time_out"] - v["time_in"] == 600
        assert v["evidence"] == entry["id"]  # feedback on this visit goes to site A about its crossing
        assert store.visits(device="site-b", plate="ca1234", origin="fleet") == crossing  # filters
        a = next(d for d in store.devices() if d["device"] == "site-a")
        assert a["status"] == "online" and a["stats"]["outbox"]["depth"] == 3
    finally:
        pub.close()
        fleet.stop()


def test_two_workers_with_a_shared_subscription_store_each_event_once(
    broker: Broker, postgres: Postgres, replay_events: list[dict[str, Any]]
) -> None:
    url = postgres.database()
    workers = [
        Fleet(fleet_config(broker, url, mqtt={"share_group": "fleet", "client_id": f"w{i}"})).start(serve=False)
        for i in range(2)
    ]
    pub = Publisher(broker)
    try:
        events = [e for d in range(20) for e in as_device(replay_events, f"dev{d:02d}")]
        pub.events(events + events[::3])  # a third of them twice
        store = workers[0].store
        wait_until(lambda: store.count_events() >= len(events) and all(w.ingest.idle() for w in workers), 60)
        assert store.count_events() == len(events)
        stored = [w.ingest.stored for w in workers]
        assert sum(stored) == len(events) and min(stored) > 0, stored  # both took a share, none twice
        assert sum(w.ingest.received for w in workers) == len(events) + len(events[::3])  # each message once
    finally:
        pub.close()
        for w in workers:
            w.stop()


def test_sqlite_default_migrations_export_and_passwords(tmp_path: Path, replay_events: list[dict[str, Any]]) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.sqlite3'}"
    store = FleetStore(url)
    assert store.version == 1
    events = as_device(replay_events, "site-a")
    assert len(store.write(Batch(events=events))) == len(events)
    assert store.write(Batch(events=events)) == []
    store.close()
    store = FleetStore(url)  # reopening applies nothing twice
    with store.engine.connect() as c:
        assert c.execute(sa.text("SELECT version, name FROM schema_version")).all() == [(1, "initial")]
    visits = [e for e in events if e["type"] == "visit"]
    t0, t1 = visits[0]["ts"], visits[-1]["ts"]
    from edge.fleet.store import epoch

    first_only = rows(store, "visits", epoch(t0), epoch(t1))
    assert [r["time_in"] for r in first_only] == [t0]
    csv = to_csv(rows(store, "visits", None, None), "visits").splitlines()
    assert csv[0].startswith("id,origin,device,") and len(csv) == 1 + len({v["attrs"]["visit"] for v in visits})
    store.close()
    h = hash_password("s3cret")
    assert verify_password("s3cret", h) and not verify_password("S3cret", h) and not verify_password("x", "junk")
