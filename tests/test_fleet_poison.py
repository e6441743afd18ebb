"""One bad device must not stop or fool ``edge fleet`` (issue 21, items 1-4): a well-behaved device
keeps publishing while another sends every poison shape that used to stop ingest for good (real
mosquitto, SQLite and PostgreSQL). Its events keep being stored (counted per second before, during
and after), each poison lands in ``dead_letters`` and in ``edge_fleet_rejected_total{reason}``,
and nothing is stored under another device's name. A database outage keeps messages
unacknowledged (nothing dead-lettered, all stored after it) and SIGTERM still stops promptly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from edge.fleet.config import parse_fleet_config
from edge.fleet.service import Fleet
from edge.fleet.store import FleetStore
from tests.conftest import ROOT, need_exe
from tests.fixtures.mqtt import Broker, free_port, sample_event
from tests.test_fleet_fixtures import Postgres, Publisher, line_event, postgres, wait_until

__all__ = ["postgres"]  # fixture used here

ID = "0123456789abcdef0123456789abcdef"
T0 = "2026-12-07T12:00:00Z"
# the issue's reproduction, byte for byte (sent with mosquitto_pub)
ISSUE_PAYLOAD = (
    '{"v":2,"id":"0123456789abcdef0123456789abcdef","device":"d","camera":"c","type":"plate",'
    '"ts":"2026-12-07T12:00:00Z","track":1000000000000000000000000000000}'
)


def _event(n: int, **kw: Any) -> dict[str, Any]:
    e = {"v": 2, "id": f"{n:032x}", "device": "evil", "camera": "c", "type": "plate", "ts": "2026-12-07T12:00:00Z"}
    return {**e, **kw}


def _text(e: dict[str, Any]) -> str:
    return json.dumps(e, separators=(",", ":"))


def poisons() -> list[tuple[str, str, bytes | str, str]]:
    """(what, topic, payload, expected reason): every shape issue 21 reproduced, and more."""
    ev = "edge/evil/c/events/"
    visit = {"visit": {"$ne": 1}, "status": "open", "time_in": "2026-12-07T12:00:00Z"}
    return [
        ("track 10^30", ev + "plate", _text(_event(1, track=10**30)), "bounds"),
        ("attrs a list", ev + "plate", _text(_event(2, attrs=[1, 2])), "schema"),
        ("numeric ts", ev + "plate", _text(_event(3, ts=1796644800)), "schema"),
        ("no type", ev + "plate", _text({k: v for k, v in _event(4).items() if k != "type"}), "schema"),
        ("device an object", ev + "plate", _text(_event(5, device={"id": "evil"})), "schema"),
        ("visit with an object id", ev + "visit", _text(_event(6, type="visit", attrs=visit)), "schema"),
        (
            "anomaly with an object id",
            ev + "anomaly",
            _text(_event(7, type="anomaly", attrs={"anomaly": [1]})),
            "schema",
        ),
        (
            "anomaly id steering a URL",
            ev + "anomaly",
            _text(_event(8, type="anomaly", attrs={"anomaly": "../../logout?"})),
            "schema",
        ),  # fmt: skip
        ("inf", ev + "plate", _text(_event(9, pos=1)).replace('"pos":1', '"pos":Infinity'), "bounds"),
        ("NaN", ev + "plate", _text(_event(10, score=0.5)).replace("0.5", "NaN"), "bounds"),
        ("1e999", ev + "plate", _text(_event(11, pos=1)).replace('"pos":1', '"pos":1e999'), "bounds"),
        ("1 MB id", ev + "plate", _text(_event(12, id="a" * 1_000_000)), "too_large"),
        ("NUL in text", ev + "plate", _text(_event(13, label="car\x00")), "text"),
        ("lone surrogate", ev + "plate", _text(_event(14, label="\ud800")), "text"),
        ("seq as text", ev + "plate", _text(_event(15, seq="5")), "schema"),
        ("plate longer than its column", ev + "plate", _text(_event(16, attrs={"plate": "X" * 65})), "bounds"),
        ("not UTF-8", ev + "plate", b'{"v":2,"label":"\xff"}', "json"),
        ("impersonation", ev + "plate", _text(_event(17, device="good")), "device_mismatch"),
        ("camera not the topic's", ev + "plate", _text(_event(18, camera="other")), "topic"),
        ("stats a list", "edge/evil/stats", "[1,2]", "schema"),
        ("stats cameras a list", "edge/evil/stats", '{"cameras":[1]}', "schema"),
        ("status an object without state", "edge/evil/status", '{"x":1}', "schema"),
        ("reply a list", "edge/evil/cmd/reply", "[1]", "schema"),
        ("snapshot not a JPEG", f"edge/evil/c/snapshot/{ID}", b"GIF89a", "schema"),
    ]


class Steady:
    """A well-behaved device: a track event every 1/rate s on its own topic, until stopped."""

    def __init__(self, broker: Broker, device: str = "good", rate: float = 40.0) -> None:
        self.pub, self.device, self.rate = Publisher(broker), device, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Steady:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            e = sample_event("cam", self.sent, device=self.device)
            self.pub.client.publish(f"edge/{self.device}/cam/events/track", e.to_bytes(), qos=1).wait_for_publish(10)
            self.sent += 1
            self._stop.wait(1 / self.rate)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.pub.close()


class PerSecond:
    """Samples a count once a second: stored per second, by phase."""

    def __init__(self, count: Any) -> None:
        self.count, self.phase = count, "before"
        self.samples: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = self.count()
        while not self._stop.wait(1.0):
            now = self.count()
            self.samples.append((self.phase, now - last))
            last = now

    def stop(self) -> dict[str, list[int]]:
        self._stop.set()
        self._thread.join(5)
        out: dict[str, list[int]] = {}
        for phase, n in self.samples:
            out.setdefault(phase, []).append(n)
        return out


def scrape(port: int) -> dict[str, float]:
    """``edge_fleet_rejected_total`` by reason from a live ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r'^edge_fleet_rejected_total\{reason="(\w+)"\} (\S+)$', text, re.M)}


def _database(kind: str, tmp_path: Path, postgres: Postgres | None) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.sqlite3'}"
    assert postgres is not None
    return postgres.database()


@pytest.mark.parametrize(("db", "rules"), [("sqlite", True), ("postgresql", False)])
def test_poison_from_one_device_does_not_stop_or_fool_ingest(
    db: str, rules: bool, broker: Broker, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pg = request.getfixturevalue("postgres") if db == "postgresql" else None
    web_port = free_port()
    cfg = parse_fleet_config(
        {
            "database": _database(db, tmp_path, pg),
            "mqtt": {"host": broker.host, "port": broker.port},
            "rules": {"enabled": rules, "rules": [{"id": "watch", "kind": "plate_watch"}]},
            "web": {"port": web_port, "auth_header": "X-Remote-User"},
            "metrics": {"enabled": True, "port": 0},
        }
    )
    fleet = Fleet(cfg).start()
    store = fleet.store
    steady = Steady(broker).start()
    rate = PerSecond(lambda: store.count_events("good"))
    evil = Publisher(broker)
    shapes = poisons()
    try:
        time.sleep(2.5)
        rate.phase = "during"
        mosquitto_pub = need_exe("mosquitto_pub")
        for _round in range(3):  # the poison arrives again and again (as a redelivered batch would)
            subprocess.run(
                [mosquitto_pub, "-h", broker.host, "-p", str(broker.port), "-q", "1", "-t", "edge/d/c/events/plate",
                 "-m", ISSUE_PAYLOAD],
                check=True, timeout=10,
            )  # fmt: skip
            for _what, topic, payload, _reason in shapes:
                evil.raw(topic, payload)
            time.sleep(1)
        evil.events([_event(99, attrs={"plate": "CA123456"})])  # a valid one from the same device
        rate.phase = "after"
        time.sleep(2.5)
        steady.stop()
        rate.phase = "drain"
        wait_until(lambda: store.count_events("good") >= steady.sent and fleet.ingest.idle(), 30, "the good device")
        per_second = rate.stop()
        print(f"\n[{db}, rules {'on' if rules else 'off'}] good device: {steady.sent} sent; stored per second:")
        for phase in ("before", "during", "after", "drain"):
            print(f"  {phase:>6}: {per_second.get(phase, [])}")

        # the good device's events kept flowing while the poison arrived, and all of them are there
        assert sum(per_second["during"]) > 0 and sum(per_second["after"]) > 0, per_second
        assert store.count_events("good") == steady.sent
        assert store.count_events("evil") == 1  # only its valid event; nothing under another name
        assert store.count_events("d") == 0
        assert store.event(f"{17:032x}") is None  # the impersonating event
        assert store.anomalies() == [] and [v for v in store.visits() if v["device"] == "evil"] == []

        # every poison: dead-lettered (topic, reason, first bytes), counted by reason, acknowledged
        expected = Counter({"bounds": 3}) + Counter(r for *_x, r in shapes for _ in range(3))
        wait_until(lambda: sum(fleet.ingest.stats.rejected.values()) >= sum(expected.values()), 10, "rejections")
        assert fleet.ingest.stats.rejected == expected
        assert {k: v for k, v in scrape(fleet.metrics_server.port).items() if v} == dict(expected)
        with store.engine.connect() as c:
            dead = c.execute(sa.text("SELECT topic, reason, detail, size, payload FROM dead_letters")).all()
        assert Counter(r.reason for r in dead) == expected
        by_topic = {(r.topic, bytes(r.payload)): r for r in dead}
        for what, topic, payload, reason in shapes:
            raw = payload.encode() if isinstance(payload, str) else payload
            row = by_topic[(topic, raw[:256])]
            assert (row.reason, row.size) == (reason, len(raw)), what
            assert bytes(row.payload) == raw[:256], what
        assert by_topic[("edge/d/c/events/plate", ISSUE_PAYLOAD.encode())].detail.startswith("integer of 31")
        assert fleet.ingest.stats.database_up and fleet.ingest.stats.write_retries == 0
        assert fleet.ingest.stats.rejected["write_failed"] == 0  # the door caught all of it

        # a stats list no longer breaks the device list (issue item 4)
        req = urllib.request.Request(f"http://127.0.0.1:{web_port}/api/devices", headers={"X-Remote-User": "op"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
            assert {d["device"] for d in json.load(r)} >= {"good", "evil"}
    finally:
        steady.stop()
        evil.close()
        fleet.stop()


def test_a_row_the_database_refuses_is_dead_lettered_alone(broker: Broker, tmp_path: Path) -> None:
    """Past the door, a row that still fails to write costs only itself: the batch falls back to
    one write per message, the refused one is retried, then dead-lettered (``write_failed``)."""
    url = f"sqlite:///{tmp_path / 'fleet.sqlite3'}"
    FleetStore(url).close()
    with sa.create_engine(url).begin() as c:  # a database that refuses one plate (a trigger)
        c.exec_driver_sql(
            "CREATE TRIGGER no_plate BEFORE INSERT ON events WHEN NEW.plate = 'REFUSED' "
            "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
        )
    cfg = parse_fleet_config(
        {"database": url, "mqtt": {"host": broker.host, "port": broker.port}, "web": {"enabled": False}}
    )
    fleet = Fleet(cfg).start(serve=False)
    pub = Publisher(broker)
    try:
        events = [_event(i, device="dev", attrs={"plate": "REFUSED" if i == 5 else f"P{i}"}) for i in range(1, 11)]
        pub.events(events)
        wait_until(lambda: sum(fleet.ingest.stats.rejected.values()) == 1 and fleet.ingest.idle(), 20, "dead letter")
        assert fleet.store.count_events("dev") == 9
        assert fleet.ingest.stats.rejected == Counter(write_failed=1)
        assert fleet.ingest.stats.write_retries == cfg.ingest.write_retries
        with fleet.store.engine.connect() as c:
            (row,) = c.execute(sa.text("SELECT topic, reason, detail FROM dead_letters")).all()
        assert row.topic == "edge/dev/c/events/plate" and row.reason == "write_failed"
        assert "refused by a trigger" in row.detail
    finally:
        pub.close()
        fleet.stop()


def test_a_fleet_engine_row_that_does_not_fit_is_dead_lettered_at_once(broker: Broker, postgres: Postgres) -> None:
    """Device text reaches the fleet engine's rows (a line's road becomes a visit's ``road_in``):
    such a row is checked like a device's, so it is dead-lettered at once, not retried."""
    cfg = parse_fleet_config(
        {
            "database": postgres.database(),
            "mqtt": {"host": broker.host, "port": broker.port},
            "rules": {"enabled": True},
            "web": {"enabled": False},
        }
    )
    fleet = Fleet(cfg).start(serve=False)
    pub = Publisher(broker)
    try:
        entry = line_event("site-a", "north", T0, track=7, direction="in", role="entry", plate="CA123456")
        entry["attrs"]["road"] = "R" * 150  # free text in the event; visits.road_in holds 100
        pub.events([entry])
        wait_until(lambda: sum(fleet.ingest.stats.rejected.values()) == 1 and fleet.ingest.idle(), 20, "dead letter")
        assert fleet.store.count_events("site-a") == 1  # the device's event itself is stored
        assert fleet.ingest.stats.rejected == Counter(bounds=1) and fleet.ingest.stats.write_retries == 0
        with fleet.store.engine.connect() as c:
            (row,) = c.execute(sa.text("SELECT topic, detail FROM dead_letters")).all()
        assert (row.topic, row.detail) == ("(fleet rules)", "visits.road_in: longer than 100 characters")
    finally:
        pub.close()
        fleet.stop()


def test_migration_clears_stats_an_older_version_stored_unchecked(tmp_path: Path) -> None:
    from edge.fleet.migrations import m001_initial, version_table

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    with sa.create_engine(url).begin() as c:  # a version-1 database with a device's list "stats"
        version_table.create(c)
        m001_initial.upgrade(c)
        c.execute(version_table.insert().values(version=1, name="initial", applied=0.0))
        c.execute(
            m001_initial.devices.insert(), [{"device": "x", "stats": "[1,2]"}, {"device": "y", "stats": '{"a":1}'}]
        )
    store = FleetStore(url)
    try:
        assert store.version == 3
        assert [(d["device"], d["stats"]) for d in store.devices()] == [("x", None), ("y", {"a": 1})]
    finally:
        store.close()


def _edge_fleet(config: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "edge", "fleet", "--config", str(config)], env=env, cwd=ROOT)


def _sigterm(proc: subprocess.Popen[bytes]) -> float:
    t = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    return time.monotonic() - t


def test_database_outage_keeps_messages_and_sigterm_is_prompt(
    broker: Broker, postgres: Postgres, tmp_path: Path
) -> None:
    url = postgres.database()
    name = url.rsplit("/", 1)[1]
    admin = f"host=127.0.0.1 port={postgres.port} user=fleet dbname=postgres"
    config = tmp_path / "fleet.yaml"
    config.write_text(
        f"database: {url}\nmqtt: {{host: {broker.host}, port: {broker.port}, client_id: fleet-outage}}\n"
        "web: {enabled: false}\n"
    )
    store = FleetStore(url)
    pub = Publisher(broker)
    proc = _edge_fleet(config)
    try:
        first = sample_event("cam", 0, device="good")
        wait_until(lambda: pub.raw("edge/good/cam/events/track", first.to_bytes()) or store.count_events() == 1, 30)
        store.close()
        with psycopg.connect(admin, autocommit=True) as c:  # the database goes away
            c.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        events = [sample_event("cam", i, device="good") for i in range(1, 21)]
        for e in events:
            pub.raw("edge/good/cam/events/track", e.to_bytes())
        pub.raw("edge/evil/c/events/plate", ISSUE_PAYLOAD.replace('"device":"d"', '"device":"evil"'))
        time.sleep(4)  # the writer finds the database gone and waits (messages unacknowledged)
        took = _sigterm(proc)
        print(f"\nSIGTERM with the database down: exited in {took:.2f} s")
        assert took < 10  # was 32 s

        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        proc = _edge_fleet(config)  # same client id: the broker kept the unacknowledged messages
        store = FleetStore(url)
        wait_until(lambda: store.count_events("good") == 21, 30, "the messages held during the outage")
        with store.engine.connect() as c:
            wait_until(lambda: c.execute(sa.text("SELECT count(*) FROM dead_letters")).scalar() == 1, 10)
            reasons = c.execute(sa.text("SELECT reason FROM dead_letters")).scalars().all()
        assert reasons == ["bounds"]  # the poison only: nothing was dead-lettered for the outage
        took = _sigterm(proc)
        print(f"SIGTERM with the database up: exited in {took:.2f} s")
        assert took < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        pub.close()
        store.close()
