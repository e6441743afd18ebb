"""Fuzzing ``edge fleet`` ingest (issue 21): thousands of mutated valid events (types changed,
huge numbers, fields deleted, unicode, NULs, broken JSON, odd topics) through the real MQTT
ingest into SQLite and PostgreSQL while a good device keeps publishing. Every message ends stored
or dead-lettered and counted (stored + rejected == sent), the database never refuses what the
door let in (no ``write_failed``), and ingest never stalls (the good device's events all land).

``EDGE_FUZZ_SEED`` replays another run; ``EDGE_FUZZ_N`` changes the number of messages."""

from __future__ import annotations

import copy
import itertools
import json
import os
import random
import re
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from edge.fleet.config import parse_fleet_config
from edge.fleet.service import Fleet
from tests.fixtures.mqtt import Broker, sample_event
from tests.test_fleet_fixtures import Postgres, Publisher, line_event, postgres, wait_until
from tests.test_fleet_poison import PerSecond, Steady

__all__ = ["postgres"]  # fixture used here

SEED = int(os.environ.get("EDGE_FUZZ_SEED", "21"))
N = int(os.environ.get("EDGE_FUZZ_N", "5000"))
DEVICE, CAMERA = "fuzz", "gate"
T0 = "2026-12-07T12:00:00.000Z"

STRINGS = [
    "", "x", "car", "ünïcödé", "🚗🚙", "\u202egnp.exe", "e\u0301", "日本語のテキスト", "a\x00b", "\x00",
    "\ud800", "\udfff", "'; DROP TABLE events; --", "../../logout?", "<script>alert(1)</script>",
    "A" * 65, "B" * 201, "C" * 70_000, T0, "2026-13-45T99:00:00Z", "not a time", "F" * 32,
]  # fmt: skip
NUMBERS = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**30, -(10**30),
           0.5, -0.0, 1e-320, 1.7976931348623157e308, 1e300]  # fmt: skip
OTHERS: list[Any] = [None, True, False, [], [1, 2], ["a"], {}, {"a": None}, {"\x00": 1}, [[[[[[[[1]]]]]]]]]


def base_events(rng: random.Random) -> list[dict[str, Any]]:
    """One valid event of each kind a device sends (fresh ids)."""
    vid, aid, eid = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    track = json.loads(sample_event(CAMERA, rng.randrange(1000), device=DEVICE).to_json())
    line = line_event(DEVICE, CAMERA, T0, track=7, direction="in", role="entry", plate="CA123456")
    head = {"v": 2, "device": DEVICE, "camera": CAMERA, "ts": T0, "seq": 3, "track": 7}
    plate = {**head, "type": "plate", "phase": "start", "attrs": {"plate": "CA123456", "list": "watch", "conf": 0.93}}
    visit_attrs = {
        "visit": vid, "status": "open", "entry_camera": CAMERA, "time_in": T0, "road_in": "north",
        "type": "car", "color": "white", "plate": "CA123456", "entry_track": 7, "evidence": [eid],
    }  # fmt: skip
    visit = {**head, "type": "visit", "phase": "start", "attrs": visit_attrs}
    anomaly_attrs = {
        "anomaly": aid, "rule": "overstay", "kind": "overstay", "severity": "warning", "state": "raised",
        "reason": "stayed 2 h", "visit": vid, "tracks": [7], "evidence": [eid], "raised_at": T0, "count": 1,
    }  # fmt: skip
    anomaly = {**head, "type": "anomaly", "phase": "start", "attrs": anomaly_attrs}
    return [track, line, plate, visit, anomaly]


def _value(rng: random.Random) -> Any:
    pool = rng.choice([STRINGS, NUMBERS, OTHERS])
    return copy.deepcopy(rng.choice(pool))  # later mutations must not change the pool


def _paths(e: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(container, key) of every value, nested ones too."""
    out: list[tuple[Any, Any]] = []
    stack: list[Any] = [e]
    while stack:
        c = stack.pop()
        keys = list(c) if isinstance(c, dict) else range(len(c))
        for k in keys:
            out.append((c, k))
            if isinstance(c[k], (dict, list)):
                stack.append(c[k])
    return out


def mutate(rng: random.Random, e: dict[str, Any]) -> tuple[str, bytes, str]:
    """(topic, payload, mutation) of a mutated copy of ``e``."""
    e = json.loads(json.dumps(e))
    e["id"] = uuid.uuid4().hex  # unique, so every stored event counts once
    etype = e["type"]
    topic = f"edge/{DEVICE}/{CAMERA}/events/{etype}"
    done = []
    for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):  # some stay valid
        paths = _paths(e)
        c, k = rng.choice(paths)
        op = rng.choice(["set", "set", "set", "delete", "add", "nul", "unicode", "device"])
        if op == "set":
            c[k] = _value(rng)
        elif op == "delete" and isinstance(c, dict):
            del c[k]
        elif op == "add":
            e[rng.choice(["extra", "x\x00", "ünï", "attrs"])] = _value(rng)
        elif op == "nul" and isinstance(c[k], str):
            c[k] = c[k][: len(c[k]) // 2] + "\x00" + c[k][len(c[k]) // 2 :]
        elif op == "unicode" and isinstance(c[k], str):
            c[k] = rng.choice(["🚗", "ü", "\u202e", "\ud83d", "\U0010ffff"]) + c[k]
        elif op == "device":
            e["device"] = rng.choice(["site-a", "fleet", "", "fuzz ", "FUZZ"])
        done.append(op)
    text = json.dumps(e, separators=(",", ":"), ensure_ascii=rng.random() < 0.5)
    payload = text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes invalid UTF-8
    r = rng.random()
    if r < 0.03:
        payload, done = payload[: rng.randrange(len(payload))], [*done, "truncate"]
    elif r < 0.05:
        i = rng.randrange(len(payload))
        payload, done = payload[:i] + bytes([rng.randrange(256)]) + payload[i + 1 :], [*done, "byte"]
    elif r < 0.07:
        constant = rng.choice([b'"seq":NaN', b'"seq":-Infinity', b'"seq":1e999'])
        payload, done = re.sub(rb'"seq":\d+', constant, payload), [*done, "constant"]
    elif r < 0.08:
        payload, done = payload + b" " * 70_000, [*done, "padding"]
    elif r < 0.10:
        topic = rng.choice(
            [topic + "/extra", f"edge/{DEVICE}/gäte/events/{etype}", f"edge/{DEVICE}/{CAMERA}/events",
             f"edge/{DEVICE}/{CAMERA}/events/", f"edge/{'x' * 70}/{CAMERA}/events/track"]
        )  # fmt: skip
        done.append("topic")
    return topic, payload, "+".join(done) or "none"


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_fuzzed_events_are_stored_or_counted_never_stall(
    db: str, broker: Broker, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if db == "postgresql":
        pg: Postgres = request.getfixturevalue("postgres")
        url = pg.database()
    else:
        url = f"sqlite:///{tmp_path / 'fleet.sqlite3'}"
    rng = random.Random(SEED)
    msgs = [mutate(rng, e) for _ in range(N // 5 + 1) for e in base_events(rng)][:N]
    cfg = parse_fleet_config(
        {"database": url, "mqtt": {"host": broker.host, "port": broker.port}, "web": {"enabled": False}}
    )
    fleet = Fleet(cfg).start(serve=False)
    steady = Steady(broker, rate=20).start()
    pub = Publisher(broker)
    store, stats = fleet.store, fleet.ingest.stats
    rate = PerSecond(lambda: stats.accepted["event"] + sum(stats.rejected.values()))
    try:
        t0 = time.monotonic()
        infos = [pub.client.publish(t, p, qos=1) for t, p, _m in msgs]
        for i in infos:
            i.wait_for_publish(30)
        published = time.monotonic() - t0

        def handled() -> int:
            return stats.accepted["event"] + sum(stats.rejected.values()) - steady.sent

        steady.stop()
        wait_until(lambda: handled() >= len(msgs) and fleet.ingest.idle(), 60, f"{len(msgs)} fuzzed messages")
        took = time.monotonic() - t0
        per_second = rate.stop()["before"]
        fuzz_stored = store.count_events() - store.count_events("good")
        rejected = sum(stats.rejected.values())
        with store.engine.connect() as c:
            dead = c.execute(sa.text("SELECT count(*) FROM dead_letters")).scalar()
        mutations = Counter(m.split("+")[0] for *_x, m in msgs)
        print(
            f"\n[{db}] seed {SEED}: {len(msgs)} fuzzed messages published in {published:.1f} s, all handled in "
            f"{took:.1f} s ({len(msgs) / took:.0f}/s): stored {fuzz_stored}, rejected {rejected} "
            f"{dict(sorted(stats.rejected.items()))}; good device {store.count_events('good')}/{steady.sent}; "
            f"first mutations {dict(mutations.most_common())}; handled per second {per_second}"
        )
        waiting = len(msgs) + steady.sent
        for n in itertools.dropwhile(lambda n: n == 0, per_second):
            assert n > 0 or waiting <= 0, f"a second with messages waiting and none handled: {per_second}"
            waiting -= n
        assert fuzz_stored + rejected == len(msgs)  # every message stored or counted
        assert dead == rejected  # and each rejection is in dead_letters
        assert stats.rejected["write_failed"] == 0 and stats.rejected["internal"] == 0  # the door caught it all
        assert stats.database_up
        assert store.count_events("good") == steady.sent  # never stalled for the good device
        assert 0 < fuzz_stored < len(msgs)  # the fuzz both kept valid events and broke others
    finally:
        steady.stop()
        pub.close()
        fleet.stop()
