"""Count events in the fleet: stored once as a time series (SQLite and PostgreSQL), checked at the
door, summed per hour/day by the JSON API and the CSV export, pruned by retention, and drawn by
the console's counts page in a real headless Chromium from a replayed traffic clip."""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from edge.counts.tally import Tally, ZoneTally
from edge.events.schema import Event, utc_iso
from edge.fleet import counts
from edge.fleet.store import FleetStore
from edge.fleet.validate import Rejected, admit
from tests.fixtures.mqtt import Broker, free_port
from tests.test_fleet_console import _csp_violations, browser  # noqa: F401  (fixture)
from tests.test_fleet_fixtures import Postgres, Publisher, postgres, wait_until  # noqa: F401  (fixture)

LANES = [[0.3, 0.3], [1.0, 0.3], [1.0, 1.0], [0.3, 1.0]]  # where the clip's vehicles drive
H = 1_795_824_000.0  # 2026-11-28T00:00:00Z, an hour boundary


def _count_event(device: str, camera: str, start: float, lines: dict[str, dict[str, dict[str, int]]]) -> dict[str, Any]:
    tally = Tally(start, start + 900, lines=lines, up=900.0)
    tally.zones["bay"] = ZoneTally(peak=3, area=900.0, dwell=120.5, entries=2)
    e = tally.event(device, camera).model_copy(update={"device": device, "seq": 1})
    return json.loads(e.to_json())


def _anomaly(at: float) -> dict[str, Any]:
    attrs = {"anomaly": "a" * 32, "rule": "jam", "kind": "overstay", "severity": "warning", "state": "raised",
             "reason": "queue", "raised_at": utc_iso(at)}  # fmt: skip
    e = {"v": 2, "id": "b" * 32, "device": "site-a", "camera": "road", "type": "anomaly", "phase": "start"}
    return {**e, "ts": utc_iso(at), "seq": 2, "attrs": attrs}


def _store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> FleetStore:
    if kind == "sqlite":
        return FleetStore(f"sqlite:///{tmp_path / 'fleet.sqlite3'}")
    pg: Postgres = request.getfixturevalue("postgres")
    return FleetStore(pg.database())


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_count_events_become_hourly_series_once(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Four 15-minute events of one hour plus one of the next, sent twice: stored once, the hour
    sums the four by direction and type (unknown vocabulary -> other), days in a zone, retention."""
    store = _store(kind, tmp_path, request)
    try:
        sent = [
            _count_event("site-a", "road", H + i * 900, {"north": {"in": {"car": 2, "truck": 1}, "out": {"tram": 1}}})
            for i in range(5)
        ]
        for _ in range(2):  # a redelivery changes nothing
            for e in sent:
                _, batch = admit("edge", "edge/site-a/road/events/count", json.dumps(e).encode())
                store.write(batch)
        hours = counts.series(store.engine, H - 3600, H + 7200)
        assert [(r["t"], r["in_car"], r["in_truck"], r["out_other"]) for r in hours] == [
            ("2026-11-28T00:00+0000", 8, 4, 4),
            ("2026-11-28T01:00+0000", 2, 1, 1),
        ]
        days = counts.series(store.engine, H - 86400, H + 86400, bucket="day", tz="America/New_York")
        assert [(r["t"], r["in_car"]) for r in days] == [("2026-11-27", 10)]  # 19:00-20:15 the evening before
        assert counts.choices(store.engine) == [{"device": "site-a", "camera": "road", "line": "north"}]
        occupancy = counts.occupancy_by_hour(store.engine, H, H + 7200, device="site-a", tz="Europe/Berlin")
        assert occupancy == [
            {"zone": "bay", "hour": 1, "mean": 1.0, "peak": 3},  # 00:00 UTC is 01:00 in Berlin in November
            {"zone": "bay", "hour": 2, "mean": 1.0, "peak": 3},
        ]
        _, batch = admit("edge", "edge/site-a/road/events/anomaly", json.dumps(_anomaly(H + 600)).encode())
        store.write(batch)
        assert counts.anomalies_per_day(store.engine, H, H + 86400, camera="road") == [{"t": "2026-11-28", "n": 1}]
        assert counts.series(store.engine, H, H + 7200, line="south") == []
        assert counts.prune(store.engine, H + 86400 + 1800, raw_days=1, hourly_days=30) == 2 * 2  # lines + zones
        assert [r["in_car"] for r in counts.series(store.engine, H, H + 7200)] == [8, 2]  # hours kept longer
    finally:
        store.close()


def test_bad_count_events_are_refused_at_the_door() -> None:
    """Negative counts, a direction that is not in/out and a missing interval start are refused
    with a reason that names the field; nothing of them is stored."""
    good = _count_event("site-a", "road", H, {"north": {"in": {"car": 1}}})
    cases = {
        "attrs.lines.north.in.car": {"north": {"in": {"car": -1}}},
        "attrs.lines.north.up": {"north": {"up": {"car": 1}}},
    }
    for field, lines in cases.items():
        bad = json.loads(json.dumps(good))
        bad["attrs"]["lines"] = lines
        with pytest.raises(Rejected) as err:
            admit("edge", "edge/site-a/road/events/count", json.dumps(bad).encode())
        assert err.value.reason == "schema" and field in err.value.detail, err.value.detail
    bad = json.loads(json.dumps(good))
    del bad["attrs"]["from"]
    with pytest.raises(Rejected) as err:
        admit("edge", "edge/site-a/road/events/count", json.dumps(bad).encode())
    assert "attrs.from" in err.value.detail


def test_counts_page_charts_the_replayed_clip_in_chromium(
    tmp_path: Path,
    broker: Broker,
    browser: Any,  # noqa: F811  (the fixture)
    model_env: Path,
    shared_data: Path,
) -> None:
    """A traffic clip replayed with 15 s intervals across an hour boundary, its count events sent
    over MQTT to the fleet: the hourly chart's bars sum to the clip's line events per hour, the
    CSV export says the same, and the page runs under the console's CSP."""
    from edge.config import parse_config
    from edge.fleet.config import parse_fleet_config
    from edge.fleet.service import Fleet
    from edge.fleet.web.auth import hash_password
    from edge.replay import replay
    from edge.rules import build_processors
    from tests.test_counts import _clip, _manual_clock

    video, lines = _clip(shared_data, "count-highway-cctv")
    app = parse_config(
        {
            "device_id": "site-a",
            "cameras": {"road": {"url": str(video), "lines": lines, "zones": {"lanes": {"coordinates": LANES}}}},
            "counts": {"interval_minutes": 0.25},
        },
        "<test>",
    )
    events: list[Event] = []
    start = H + 3600 - 12  # 00:59:48: the clip's 30 s span two hours
    replay(str(video), app, "road", on_event=events.append, show_progress=False, start_time=start,
           processors=build_processors(app, _manual_clock(), None, persist=False))  # fmt: skip
    sent = [json.loads(e.to_json()) for e in events if e.type in ("count", "line")]
    per_hour = Counter(
        datetime.fromtimestamp(int(datetime.fromisoformat(e["ts"]).timestamp() // 3600 * 3600), timezone.utc).strftime(
            "%Y-%m-%dT%H:00+0000"
        )
        for e in sent
        if e["type"] == "line"
    )
    assert sum(per_hour.values()) >= 15 and len(per_hour) == 2, per_hour

    port = free_port()
    fleet = Fleet(
        parse_fleet_config(
            {
                "database": f"sqlite:///{tmp_path / 'fleet.sqlite3'}",
                "mqtt": {"host": broker.host, "port": broker.port},
                "web": {"port": port, "users": {"alice": hash_password("correct horse")}},
            }
        )
    ).start()
    try:
        pub = Publisher(broker)
        pub.events([*sent, _anomaly(H + 3600)])
        pub.close()
        n_counts = sum(1 for e in sent if e["type"] == "count")
        wait_until(lambda: len(counts.series(fleet.store.engine, H, H + 7200)) == 2, what="hourly rows")
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        blocked = _csp_violations(page)
        base = f"http://127.0.0.1:{port}"
        page.goto(base + "/login")
        page.fill("#username", "alice")
        page.fill("#password", "correct horse")
        page.click("#login")
        page.wait_for_selector("a.nav")
        query = f"since={int(H)}&until={int(H + 86400)}&device=site-a&camera=road&line=count"
        page.goto(f"{base}/counts?{query}")
        page.wait_for_selector("body[data-ready='1']", timeout=20000)
        shown = page.evaluate(
            """() => { const c = window.countCharts.hourly; const out = {};
                 c.data.labels.forEach((l, i) => { out[l] = c.data.datasets.reduce((s, d) => s + d.data[i], 0); });
                 return out; }"""
        )
        assert shown == dict(per_hour), (shown, per_hour, n_counts)
        occupancy = page.evaluate("() => window.countCharts.occupancy.data.datasets.map((d) => [d.label, d.data])")
        assert [label for label, _ in occupancy] == ["lanes mean"]
        assert [h for h, v in enumerate(occupancy[0][1]) if v] == [0, 1], occupancy  # 00:59:48 .. 01:00:18
        bars = page.evaluate(
            "() => [window.countCharts.anomalies.data.labels, window.countCharts.anomalies.data.datasets[0].data]"
        )
        assert bars == [["2026-11-28"], [1]]
        shots = Path(os.environ.get("EDGE_CONSOLE_SHOTS") or tmp_path)
        page.screenshot(path=str(shots / "counts.png"), full_page=True)
        exported = page.request.get(f"{base}/export/counts.csv?{query}")
        assert exported.status == 200
        table = list(csv.DictReader(io.StringIO(exported.text())))
        assert {r["t"]: sum(int(r[c]) for c in counts.COLUMNS) for r in table} == dict(per_hour)
        assert page.request.get(f"{base}/api/counts?bucket=week").status == 400
        assert not blocked, blocked
    finally:
        fleet.stop()


def _fleet(tmp_path: Path, broker: Broker, **extra: Any) -> Any:
    from edge.fleet.config import parse_fleet_config
    from edge.fleet.service import Fleet

    cfg = {"database": f"sqlite:///{tmp_path / 'fleet.sqlite3'}", "mqtt": {"host": broker.host, "port": broker.port}}
    return Fleet(parse_fleet_config({**cfg, "web": {"enabled": False}, **extra})).start()


def _batch(line_events: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``crossings`` event a device at ``events.detail: crossings`` sends for these line events."""
    from edge.counts.batch import Batch, batch_start

    first = Event.model_validate(line_events[0])
    start = batch_start(datetime.fromisoformat(first.ts.replace("Z", "+00:00")).timestamp())
    batch = Batch(start, start + 60)
    for e in line_events:
        batch.add(Event.model_validate(e))
    sent = batch.event(first.device, first.camera).model_copy(update={"device": first.device, "seq": 7})
    return json.loads(sent.to_json())


def test_crossings_batches_are_stored_and_the_fleet_rules_read_their_rows(tmp_path: Path, broker: Broker) -> None:
    """A batch from a device at ``events.detail: crossings`` is stored once (not dead-lettered as
    malformed); the fleet's rule engine reads its rows as crossings: a car that entered at site A
    (in a batch) and left at site B (a line event) is one closed cross-device visit. A batch whose
    rows do not fit its columns is refused at the door, naming the field."""
    import time

    import sqlalchemy as sa

    from tests.test_fleet_fixtures import line_event

    m = time.time() // 60 * 60 - 120  # a minute just over (the fleet's visits time out by the wall clock)
    entry = line_event("site-a", "north", utc_iso(m + 5.25), track=7, direction="in", role="entry", plate="CA123456")
    other = line_event("site-a", "north", utc_iso(m + 40), track=8, direction="out", role="exit", plate="XY1")
    batch = _batch([entry, other])
    bad = json.loads(json.dumps(batch))
    bad["id"], bad["attrs"]["rows"][1] = "c" * 32, bad["attrs"]["rows"][1][:-1]
    with pytest.raises(Rejected) as err:
        admit("edge", "edge/site-a/north/events/crossings", json.dumps(bad).encode())
    assert err.value.reason == "schema" and "rows.1" in err.value.detail, err.value.detail
    exit_ = line_event("site-b", "south", utc_iso(m + 100), track=3, direction="out", role="exit", plate="CA123456")
    fleet = _fleet(tmp_path, broker, rules={"enabled": True})
    try:
        pub = Publisher(broker)
        pub.events([batch, batch, bad, exit_])  # the batch twice: a redelivery
        pub.close()
        store = fleet.store
        wait_until(lambda: store.event(exit_["id"]) is not None, what="the exit crossing")
        wait_until(lambda: any(v["status"] == "closed" for v in store.visits()), what="a closed visit")
        (visit,) = [v for v in store.visits() if v["status"] == "closed"]
        assert (visit["device"], visit["exit_device"], visit["plate"]) == ("site-a", "site-b", "CA123456")
        assert store.event(batch["id"]) is not None and store.count_events("site-a") == 1
        with store.engine.connect() as c:
            dead = c.execute(sa.text("SELECT topic, reason FROM dead_letters")).all()
        assert [tuple(r) for r in dead] == [("edge/site-a/north/events/crossings", "schema")]
    finally:
        fleet.stop()


def test_store_events_false_keeps_counts_and_drops_raw_events(tmp_path: Path, broker: Broker) -> None:
    """``store_events: false`` (a rules-only instance, docs/console.md): no track, line or crossings
    event is stored, but count events still fill the counts time series the console charts."""
    from tests.test_fleet_fixtures import line_event

    crossing = line_event("site-a", "road", utc_iso(H + 30), track=1, direction="in", role="entry", plate="CA1")
    track = {"v": 2, "id": "d" * 32, "device": "site-a", "camera": "road", "type": "track", "phase": "start",
             "ts": utc_iso(H + 29), "seq": 1, "track": 1, "label": "car"}  # fmt: skip
    count = _count_event("site-a", "road", H, {"gate": {"in": {"car": 1}}})
    fleet = _fleet(tmp_path, broker, store_events=False)
    try:
        pub = Publisher(broker)
        pub.events([track, crossing, _batch([crossing]), count])
        pub.close()
        store = fleet.store
        wait_until(lambda: counts.series(store.engine, H, H + 3600) != [], what="the hourly counts")
        assert [(r["t"], r["in_car"]) for r in counts.series(store.engine, H, H + 3600)] == [
            ("2026-11-28T00:00+0000", 1)
        ]
        wait_until(lambda: fleet.ingest.idle(), what="ingest idle")
        assert [e["type"] for e in map(store.event, store.event_ids())] == ["count"]
    finally:
        fleet.stop()
