"""``edge fleet`` ingest against a real mosquitto and a real PostgreSQL (and SQLite): two devices'
replayed events, duplicates stored once, a visit that enters at one device and leaves at another,
two workers sharing the load through an MQTT shared subscription."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from edge.commands import sign
from edge.fleet.config import parse_fleet_config
from edge.fleet.export import rows, to_csv
from edge.fleet.service import Fleet
from edge.fleet.store import Batch, FleetStore
from edge.fleet.web.auth import hash_password, verify_password
from tests.fixtures.mqtt import Broker, free_port
from tests.test_fleet_fixtures import Postgres, Publisher, as_device, line_event, postgres, replay_events, wait_until

__all__ = ["postgres", "replay_events"]  # fixtures used here


def _http(url: str, user: str | None = None, csrf: str | None = None) -> tuple[int, bytes]:
    headers = {"X-Remote-User": user} if user else {}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    req = urllib.request.Request(
        url, headers=headers, method="POST" if csrf is not None else "GET", data=b"" if csrf is not None else None
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def fleet_config(broker: Broker, database: str, **extra: Any) -> Any:
    mqtt = {"host": broker.host, "port": broker.port, **extra.pop("mqtt", {})}
    return parse_fleet_config(
        {"database": database, "mqtt": mqtt, "web": extra.pop("web", {"enabled": False}), **extra}
    )


def test_two_devices_duplicates_and_a_visit_across_devices(
    broker: Broker, postgres: Postgres, replay_events: list[dict[str, Any]]
) -> None:
    rules = {"enabled": True, "device_id": "fleet", "rules": [{"id": "watch", "kind": "plate_watch"}]}
    web = {"port": free_port(), "auth_header": "X-Remote-User"}  # behind an authenticating proxy
    cfg = fleet_config(broker, postgres.database(), rules=rules, web=web, commands={"secret": "k3y"})
    fleet = Fleet(cfg).start()
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

        # a watch-listed plate at site B: the fleet engine raises it; the console resolves it with a
        # signed command to edge/fleet/cmd/console, answered by the fleet's own CommandHandler
        watch = {
            **leave,
            "id": "ab" * 16,
            "type": "plate",
            "phase": "start",
            "attrs": {"plate": "BAD1", "list": "watch"},
        }
        pub.events([watch])
        wait_until(lambda: len(store.anomalies(open_only=True)) == 1, what="fleet anomaly")
        (anomaly,) = store.anomalies(open_only=True)
        assert (anomaly["origin"], anomaly["device"], anomaly["camera"]) == ("fleet", "site-b", "site-b/south")
        base = f"http://127.0.0.1:{web['port']}"
        assert _http(base + "/api/visits")[0] == 401  # no header, no data
        page = _http(base + "/", user="bob")[1].decode()
        csrf = re.search(r'name="csrf" content="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        action = base + f"/api/anomalies/resolve?device=site-b&id={anomaly['id']}"
        assert _http(action, user="bob", csrf="nope")[0] == 403
        status, body = _http(action, user="bob", csrf=csrf)
        sent = json.loads(body)["sent"]
        assert status == 200 and sent["by"] == "bob" and sign(sent, "k3y") == sent["sig"]
        wait_until(lambda: (store.command(sent["id"]) or {}).get("reply") is not None, what="the fleet's reply")
        assert store.command(sent["id"])["reply"] == {  # type: ignore[index]
            "id": sent["id"],
            "ok": True,
            "cmd": "resolve",
            "anomaly": anomaly["id"],
            "events": 1,
        }
        wait_until(lambda: not store.anomalies(open_only=True), what="resolved")
        assert store.anomaly(anomaly["id"])["state"] == "resolved"  # type: ignore[index]
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
    assert store.version == 3
    events = as_device(replay_events, "site-a")
    assert len(store.write(Batch(events=events))) == len(events)
    assert store.write(Batch(events=events)) == []
    store.close()
    store = FleetStore(url)  # reopening applies nothing twice
    with store.engine.connect() as c:
        assert c.execute(sa.text("SELECT version, name FROM schema_version")).all() == [
            (1, "initial"),
            (2, "dead_letters"),
            (3, "counts"),
        ]
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
