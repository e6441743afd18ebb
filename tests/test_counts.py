"""Count events (edge.counts): per line and wall-clock interval, crossings by direction and type.

The replay and kill -9 tests run the real pipeline on the shared traffic clips with the line from
each clip's truth; the kill -9 one runs ``edge run`` in a real subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.app import build_delivery
from edge.config import ConfigError, parse_config
from edge.counts.interval import Intervals
from edge.events.schema import Event, utc_iso
from edge.metrics import Metrics
from edge.replay import replay
from edge.rules import build_processors
from tests.conftest import need

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ("count-highway-cctv", "count-road-oncoming")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _clip(shared_data: Path, name: str) -> tuple[Path, dict[str, Any]]:
    video = shared_data / "videos" / f"{name}.mp4"
    truth = shared_data / "videos" / f"{name}.truth.json"
    need(video.is_file() and truth.is_file(), f"clip {video} with its truth")
    line = json.loads(truth.read_text(encoding="utf-8"))["line"]
    return video, {"count": {"points": line["points"], "in": line["in"]}}


def _tallies(lines: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    """(line, dir, type) -> crossings, from line events."""
    return Counter((e["attrs"]["line"], e["attrs"]["dir"], e["attrs"].get("type") or e.get("label")) for e in lines)


def _counted(counts: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    """(line, dir, type) -> crossings, summed over count events."""
    out: Counter[tuple[str, str, str]] = Counter()
    for e in counts:
        for line, dirs in e["attrs"]["lines"].items():
            for d, types in dirs.items():
                for kind, n in types.items():
                    out[(line, d, kind)] += n
    return out


@pytest.mark.parametrize("name", CLIPS)
def test_replayed_clip_counts_equal_its_line_events(name: str, model_env: Path, shared_data: Path) -> None:
    """15 s intervals over a 30 s clip that starts mid-interval: one event per interval, wall-clock
    aligned, and their sums per line, direction and type are exactly the clip's line events."""
    video, lines = _clip(shared_data, name)
    app = parse_config(
        {"cameras": {"camera": {"url": str(video), "lines": lines}}, "counts": {"interval_minutes": 0.25}}, "<test>"
    )
    events: list[Event] = []
    start = 1_800_000_007.0  # 7 s into a 15 s interval
    replay(
        str(video),
        app,
        "camera",
        on_event=events.append,
        processors=build_processors(app, _manual_clock(), None, persist=False),
        show_progress=False,
        start_time=start,
    )
    dumped = [json.loads(e.to_json()) for e in events]
    crossings = [e for e in dumped if e["type"] == "line"]
    counts = [e for e in dumped if e["type"] == "count"]
    assert len(crossings) >= 15, f"{name}: only {len(crossings)} crossings"
    assert _counted(counts) == _tallies(crossings)
    froms = [_epoch(e["attrs"]["from"]) for e in counts]
    assert froms == sorted(froms) and len(set(froms)) == len(froms)
    assert froms[0] == 1_800_000_000.0 and all(f % 15 == 0 for f in froms)
    assert 3 <= len(counts) <= 4  # 7 s .. 37 s: three intervals (a fourth only for tail crossings)
    assert len({e["id"] for e in counts}) == len(counts)
    assert all(e["attrs"]["period"] == 15 and len(e["id"]) == 32 for e in counts)


def _manual_clock() -> Any:
    from edge.clock import ManualClock

    return ManualClock()


KILL_INTERVAL_S = 30


def _run_config(tmp_path: Path, video: Path, lines: dict[str, Any], detail: str = "tracks") -> Path:
    camera = {"url": str(video), "loop": True, "realtime": True, "lines": lines, "events": {"detail": detail}}
    data = {
        "device_id": "dev-k",
        "cameras": {"road": camera},
        # batches as short as intervals, so a kill test waits ~1 min, not ~2
        "counts": {"interval_minutes": KILL_INTERVAL_S / 60, "crossings_seconds": KILL_INTERVAL_S},
        "outbox": {"path": str(tmp_path / "state" / "outbox.sqlite3")},
        "outputs": {"jsonl": str(tmp_path / "events.jsonl")},
        "metrics": {"enabled": False},
        "commands": {"enabled": False},
    }
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _events(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "events.jsonl"
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.endswith("}")]


def _start(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfg)], env=env, stderr=out)


def _wait(pred: Any, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.3)
    raise AssertionError(f"timed out; log: {log.read_text(errors='replace')[-3000:]}")


def _kill9_when(cfg: Path, log: Path, pred: Any) -> Any:
    """Start ``edge run``, SIGKILL it as soon as ``pred()`` holds; returns what ``pred`` gave."""
    proc = _start(cfg, log)
    try:
        value = _wait(pred, 240, proc, log)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    return value


def _run_past(cfg: Path, log: Path, tmp_path: Path, etype: str, start: float) -> list[dict[str, Any]]:
    """Start ``edge run`` again, stop it (SIGTERM) once it sent an ``etype`` event of a later
    period than the one open at the kill (``from`` > ``start``); returns every event sent."""
    proc = _start(cfg, log)
    try:

        def later() -> bool:
            return any(_epoch(e["attrs"]["from"]) > start for e in _events(tmp_path) if e["type"] == etype)

        _wait(later, 240, proc, log)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return _events(tmp_path)


def test_interval_open_at_kill9_is_published_once_and_complete(
    tmp_path: Path, model_env: Path, shared_data: Path
) -> None:
    """``edge run`` is killed with SIGKILL in the middle of an interval that already has crossings,
    then started again: that interval's count event comes once and holds the crossings from
    before the kill; every interval's counts equal the line events in it."""
    video, lines = _clip(shared_data, "count-highway-cctv")
    cfg, log = _run_config(tmp_path, video, lines), tmp_path / "edge.log"
    _kill9_when(cfg, log, lambda: [e for e in _events(tmp_path) if e["type"] == "line"])
    before = {e["id"] for e in _events(tmp_path) if e["type"] == "line"}
    open_start = Intervals(KILL_INTERVAL_S / 60, "UTC").start(time.time())
    assert not [e for e in _events(tmp_path) if e["type"] == "count" and _epoch(e["attrs"]["from"]) == open_start]
    events = _run_past(cfg, log, tmp_path, "count", open_start)  # the interval after the killed one is sent too
    counts = [e for e in events if e["type"] == "count"]
    assert len({e["id"] for e in counts}) == len(counts), "an interval was published twice"
    assert len({(e["camera"], e["attrs"]["from"]) for e in counts}) == len(counts)
    spanning = [e for e in counts if _epoch(e["attrs"]["from"]) == open_start]
    assert len(spanning) == 1, [e["attrs"]["from"] for e in counts]
    crossings = [e for e in events if e["type"] == "line"]
    for c in counts:
        lo = _epoch(c["attrs"]["from"])
        inside = [e for e in crossings if lo <= _epoch(e["ts"]) < lo + KILL_INTERVAL_S]
        assert _counted([c]) == _tallies(inside), (c, [e["ts"] for e in inside])
    killed_in = [e for e in crossings if e["id"] in before and _epoch(e["ts"]) >= open_start]
    assert killed_in, "no crossing in the interval open at the kill"  # so the check above covers them
    assert sum(_counted(spanning).values()) >= len(killed_in)


def _beside_a_tracks_camera(tmp_path: Path, camera: str, detail: str) -> tuple[Any, Path]:
    """The delivery (bus, JSONL file) of ``camera`` at ``detail`` and camera ``full`` at ``tracks``."""
    out = tmp_path / "events.jsonl"
    app = parse_config(
        {
            "cameras": {
                camera: {"url": "a.mp4", "events": {"detail": detail}, "lines": _LINE},
                "full": {"url": "b.mp4", "lines": _LINE},
            },
            "outputs": {"jsonl": str(out)},
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        },
        "<test>",
    )
    bus, _ = build_delivery(app)
    return bus, out


def test_counts_detail_sends_only_counts_and_anomalies(tmp_path: Path) -> None:
    """A camera at ``events.detail: counts`` sends no track or line events, the count event goes
    out; a ``tracks`` camera beside it still sends everything; crossings are still counted."""
    bus, out = _beside_a_tracks_camera(tmp_path, "quiet", "counts")
    t0 = 1_800_000_000.0
    for cam in ("quiet", "full"):
        bus.emit(Event(device="", camera=cam, type="track", phase="start", ts=utc_iso(t0 + 1), track=1, label="car"))
        bus.emit(_line(cam, t0 + 2))
    bus.tick(t0 + 15 * 60 + 10)  # closes the first interval of both cameras
    bus.close()
    sent = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert [(e["camera"], e["type"]) for e in sent if e["camera"] == "quiet"] == [("quiet", "count")]
    assert {e["type"] for e in sent if e["camera"] == "full"} == {"track", "line", "count"}
    quiet = next(e for e in sent if e["camera"] == "quiet")
    assert quiet["attrs"]["lines"] == {"gate": {"in": {"car": 1}}}


_LINE = {"gate": {"points": [[0.1, 0.5], [0.9, 0.5]], "in": "up"}}


def _line(camera: str, at: float, kind: str = "car", direction: str = "in") -> Event:
    attrs = {"line": "gate", "dir": direction, "type": kind}
    return Event(device="", camera=camera, type="line", ts=utc_iso(at), track=1, label="car", attrs=attrs)


def test_intervals_follow_the_local_wall_clock() -> None:
    """An hour in India (UTC+5:30) starts at local :00, i.e. at UTC :30; 15 minutes in Berlin
    stay 15 minutes long across the spring DST change."""
    kolkata = Intervals(60, "Asia/Kolkata")
    start = kolkata.start(_epoch("2026-12-07T10:10:00+00:00"))
    assert utc_iso(start) == "2026-12-07T09:30:00.000Z" and kolkata.end(start) - start == 3600
    berlin = Intervals(15, "Europe/Berlin")
    s = berlin.start(_epoch("2026-03-29T00:50:00+00:00"))  # 01:50 CET, 10 minutes before the change
    assert berlin.end(s) - s == 900 and utc_iso(berlin.end(s)) == "2026-03-29T01:00:00.000Z"
    day = Intervals(1440, "Europe/Berlin")
    d = day.start(_epoch("2026-03-29T12:00:00+00:00"))
    assert day.end(d) - d == 23 * 3600  # the short day


def test_bad_counts_settings_name_the_field() -> None:
    """An interval that does not divide a day or an unknown zone is a one-line config error."""
    for counts, words in (({"interval_minutes": 7}, "divide a day"), ({"timezone": "Mars/Base"}, "Mars/Base")):
        with pytest.raises(ConfigError) as err:
            parse_config({"cameras": {"c": {"url": "a.mp4"}}, "counts": counts}, "edge.yaml")
        assert "counts." in str(err.value) and words in str(err.value)


def test_line_crossings_metric_by_direction_and_type() -> None:
    """``edge_line_crossings_total{camera,line,dir,type}`` counts line events."""
    m = Metrics()
    for kind in ("car", "car", "truck"):
        m.count_event(_line("road", 0.0, kind))
    text = m.render().decode()
    assert 'edge_line_crossings_total{camera="road",dir="in",line="gate",type="car"} 2.0' in text
    assert 'edge_line_crossings_total{camera="road",dir="in",line="gate",type="truck"} 1.0' in text


def test_home_assistant_sensor_per_line_and_direction_reads_the_count_event() -> None:
    """Discovery announces a sensor per counted line and direction; its template (rendered with
    Jinja2, as Home Assistant does) gives that line's crossings of the last interval, 0 if none."""
    import jinja2

    from edge.counts.tally import Tally
    from edge.events.homeassistant import discovery_messages
    from edge.events.topics import Topics

    msgs = dict(discovery_messages(Topics("edge", "dev1"), ["road"], [("road", "north")]))
    sensor = json.loads(msgs["homeassistant/sensor/edge_dev1_road_north_in/config"])
    assert sensor["state_topic"] == "edge/dev1/road/events/count"
    tally = Tally(0.0, 900.0)
    for kind in ("car", "car", "truck"):
        tally.crossing("north", "in", kind)
    payload = json.loads(tally.event("dev1", "road").to_json())
    env = jinja2.Environment()
    for direction, want in (("in", "3"), ("out", "0")):
        cfg = json.loads(msgs[f"homeassistant/sensor/edge_dev1_road_north_{direction}/config"])
        assert env.from_string(cfg["value_template"]).render(value_json=payload) == want


def _zone(camera: str, at: float, phase: str, occupancy: int, dwell: float | None = None) -> Event:
    attrs: dict[str, Any] = {"zone": "bay", "occupancy": occupancy}
    if dwell is not None:
        attrs["dwell"] = dwell
    return Event(device="", camera=camera, type="zone", phase=phase, ts=utc_iso(at), track=2, attrs=attrs)


def test_state_file_continues_an_interval_and_resends_an_undelivered_one(tmp_path: Path) -> None:
    """1 Hz ticks over 15 s intervals with a car parked in a zone: every full interval is up 15 s
    with mean occupancy 1. A processor dropped without closing (kill -9) and built again from its
    SQLite file continues the open interval; an interval closed but never handed back (not in
    the outbox) is sent again with the same id, and only once."""
    from edge.counts.processor import CountProcessor
    from edge.counts.store import CountStore

    def make() -> CountProcessor:
        return CountProcessor("dev", {"road"}, Intervals(0.25, "UTC"), CountStore(tmp_path / "counts.sqlite3"))

    t0 = 1_800_000_000.0  # an interval start
    out: list[Event] = []

    def deliver(proc: CountProcessor, derived: list[Event], hand_back: bool = True) -> None:
        for e in derived:  # what the bus does: the sinks get it, then the processors see it
            out.append(e)
            if hand_back:
                proc.process(e.model_copy(update={"device": "dev"}))

    proc = make()
    deliver(proc, proc.tick(t0))
    deliver(proc, proc.process(_zone("road", t0 + 0.5, "start", 1)))
    for i in range(1, 42):
        if i in (3, 17, 33, 39):
            deliver(proc, proc.process(_line("road", t0 + i + 0.2)))
        deliver(proc, proc.tick(t0 + i))
    assert [e.attrs["from"] for e in out] == [utc_iso(t0), utc_iso(t0 + 15)]
    assert out[1].attrs["up"] == 15 and out[1].attrs["zones"]["bay"] == {"peak": 1, "mean": 1.0, "dwell": 0.0, "n": 0}
    assert [e.attrs["lines"] for e in out] == [{"gate": {"in": {"car": 1}}}, {"gate": {"in": {"car": 1}}}]
    # kill -9 at 41 s: no close(); a new process continues from the state file
    proc, out = make(), []
    for i in range(50, 60):
        deliver(proc, proc.tick(t0 + i), hand_back=False)  # killed again before it reached the outbox
    assert [e.attrs["from"] for e in out] == [utc_iso(t0 + 30)]
    first = out[0]
    assert first.attrs["lines"] == {"gate": {"in": {"car": 2}}}  # 33.2 and 39.2, before the kill
    # 30-41 s ran (occupancy and up reach the file at most once a second of wall time, crossings
    # at once: the last save here was the crossing at 39.2 s); the outage is not up
    assert 9 <= first.attrs["up"] <= 11
    proc, out = make(), []
    deliver(proc, proc.tick(t0 + 60))  # sent again, same id and counts; handed back this time
    assert [(e.id, e.attrs) for e in out] == [(first.id, first.attrs)]
    proc.close()
    proc, out = make(), []
    deliver(proc, proc.tick(t0 + 61))
    assert out == []  # delivered once: never again


# -- events.detail: crossings (one crossings event per camera and minute) ---------------------------


def _described_line(camera: str, at: float, track: int, direction: str = "in") -> Event:
    attrs = {"line": "gate", "dir": direction, "type": "car", "type_confidence": 0.93, "color": "white",
             "color_confidence": 0.71, "road": "B96"}  # fmt: skip
    return Event(device="", camera=camera, type="line", ts=utc_iso(at), track=track, label="car", attrs=attrs)


def test_crossings_detail_sends_one_batch_a_minute_that_holds_every_crossing(tmp_path: Path) -> None:
    """A camera at ``events.detail: crossings`` sends no line or track events but one ``crossings``
    event per minute with crossings in it; its rows give back each line event (time to the ms,
    track, label, line, direction, type, colour, road); the count events still go out, and the
    batches are valid events of the published JSON Schema. A ``tracks`` camera gets no batch."""
    import jsonschema

    from edge.counts.batch import line_events

    bus, out = _beside_a_tracks_camera(tmp_path, "busy", "crossings")
    t0 = 1_800_000_000.0  # a minute (and 15-minute) boundary
    sent_lines = []
    for i, at in enumerate((3.25, 41.5, 59.999, 61.0, 150.125)):  # minutes 0, 0, 0, 1, 2
        for cam in ("busy", "full"):
            bus.emit(Event(device="", camera=cam, type="track", phase="start", ts=utc_iso(t0 + at), track=i))
            line = bus.emit(_described_line(cam, t0 + at, i, "in" if i % 2 else "out"))
            if cam == "busy":
                sent_lines.append(json.loads(line.to_json()))
        bus.tick(t0 + at + 1)
    bus.tick(t0 + 15 * 60 + 10)  # every minute and the first interval are over
    bus.close()
    sent = [json.loads(ln) for ln in out.read_text().splitlines()]
    busy = [e for e in sent if e["camera"] == "busy"]
    assert {e["type"] for e in busy} == {"crossings", "count"}
    batches = [e for e in busy if e["type"] == "crossings"]
    assert [(e["attrs"]["from"], len(e["attrs"]["rows"])) for e in batches] == [
        (utc_iso(t0), 3), (utc_iso(t0 + 60), 1), (utc_iso(t0 + 120), 1),
    ]  # fmt: skip
    assert all(e["attrs"]["period"] == 60 and e["ts"] == utc_iso(_epoch(e["attrs"]["from"]) + 60) for e in batches)
    keep = ("ts", "track", "label", "attrs")
    assert [{k: e[k] for k in keep} for b in batches for e in line_events(b)] == [
        {k: e[k] for k in keep} for e in sent_lines
    ]
    assert {e["type"] for e in sent if e["camera"] == "full"} == {"track", "line", "count"}
    schema = json.loads((ROOT / "docs" / "event-schema.json").read_text(encoding="utf-8"))
    for e in batches:
        jsonschema.validate(e, schema)
    count = next(e for e in busy if e["type"] == "count")
    assert count["attrs"]["lines"] == {"gate": {"in": {"car": 2}, "out": {"car": 3}}}


def test_crossings_seconds_sets_the_batch_length() -> None:
    """``counts.crossings_seconds: 300``: crossings of one wall-clock five minutes go out in one
    event (``period`` 300) when they are over; a length that does not divide an hour is refused
    at load, naming the field."""
    from edge.config import AppConfig
    from edge.counts.processor import CountProcessor

    proc = CountProcessor("dev", set(), Intervals(15, "UTC"), None, batched={"road"}, batch_seconds=300)
    t0 = 1_800_000_000.0  # a five-minute boundary
    out: list[Event] = []
    for i, at in enumerate((5.0, 130.0, 299.0, 301.0)):
        out += proc.process(_described_line("road", t0 + at, i))
        out += proc.tick(t0 + at + 1)
    assert [(e.attrs["from"], e.attrs["period"], len(e.attrs["rows"])) for e in out] == [(utc_iso(t0), 300, 3)]
    out += proc.close()
    assert [e.attrs["from"] for e in out[1:]] == [utc_iso(t0 + 300)]
    with pytest.raises(ValueError, match="crossings_seconds"):
        AppConfig.model_validate({"device_id": "d", "counts": {"crossings_seconds": 70}})


def test_crossings_batch_open_at_kill9_is_sent_once_with_its_crossings(tmp_path: Path) -> None:
    """The state file holds the open minute: a processor dropped without closing (kill -9) and
    built again continues it, so the minute's one batch has the crossings from before and after;
    a batch closed but never handed back (not in the outbox) is sent again with the same id, once."""
    from edge.counts.processor import CountProcessor
    from edge.counts.store import CountStore

    def make() -> CountProcessor:
        store = CountStore(tmp_path / "counts.sqlite3")
        return CountProcessor("dev", set(), Intervals(15, "UTC"), store, batched={"road"})

    t0 = 1_800_000_000.0
    proc, out = make(), []
    for i, at in enumerate((5.0, 20.0)):
        out += proc.process(_described_line("road", t0 + at, i))
        out += proc.tick(t0 + at + 1)
    assert out == []  # the minute is open; kill -9 now: no close()
    proc = make()
    out += proc.process(_described_line("road", t0 + 40, 2))
    out += proc.tick(t0 + 65)  # 5 s after the minute: not yet (10 s late)
    assert out == []
    out += proc.tick(t0 + 71)
    assert [(e.attrs["from"], [r[:2] for r in e.attrs["rows"]]) for e in out] == [
        (utc_iso(t0), [[5.0, 0], [20.0, 1], [40.0, 2]])
    ]
    first = out[0]  # killed again before the bus handed it back (it may not be in the outbox)
    proc, out = make(), []
    out += proc.tick(t0 + 72)
    assert [(e.id, e.attrs) for e in out] == [(first.id, first.attrs)]
    for e in out:
        proc.process(e.model_copy(update={"device": "dev"}))  # the bus hands it back: delivered
    proc.close()
    proc = make()
    assert proc.tick(t0 + 200) == []


def test_crossings_batch_of_a_full_minute_is_cut_and_late_crossings_go_to_the_open_minute() -> None:
    """More crossings in a minute than one event carries make several events (distinct ids, the
    rows in order); a crossing that comes after its minute was sent is in the next batch, with
    its true time (a negative offset), not lost and not in a batch of its own id twice."""
    from edge.counts.batch import MAX_ROWS, line_events
    from edge.counts.processor import CountProcessor

    proc = CountProcessor("dev", set(), Intervals(15, "UTC"), None, batched={"road"})
    t0 = 1_800_000_000.0
    out: list[Event] = []
    n = MAX_ROWS + 5
    for i in range(n):
        out += proc.process(_described_line("road", t0 + i * 50 / n, i))
    out += proc.tick(t0 + 75)  # the minute is sent
    out += proc.process(_described_line("road", t0 + 59.5, n))  # a crossing from that minute, late
    out += proc.process(_described_line("road", t0 + 80, n + 1))
    out += proc.close()
    sizes = [len(e.attrs["rows"]) for e in out]
    assert len(sizes) >= 3 and max(sizes) <= MAX_ROWS and sizes[-1] == 2, sizes
    assert all(_epoch(e.attrs["from"]) < t0 + 60 for e in out[:-1]) and out[-1].attrs["from"] == utc_iso(t0 + 60)
    assert len({e.id for e in out}) == len(out)
    rows = [x for e in out for x in line_events(json.loads(e.model_copy(update={"device": "dev"}).to_json()))]
    assert [r["track"] for r in rows] == list(range(n + 2))
    assert rows[n]["ts"] == utc_iso(t0 + 59.5) and out[-1].attrs["rows"][0][0] == -0.5


def _open_batch(state: Path) -> tuple[float, list[tuple[int, float]]] | None:
    """The open crossings batch in the state file, if it has crossings: (start, [(track, t)])."""
    import sqlite3

    if not state.is_file():
        return None
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT data FROM batch WHERE closed = 0").fetchall()
    except sqlite3.OperationalError:  # the table is not there yet
        return None
    finally:
        db.close()
    for (data,) in rows:
        d = json.loads(data)
        if d["crossings"]:
            return float(d["start"]), [(int(c["track"]), round(c["t"], 3)) for c in d["crossings"]]
    return None


def test_crossings_batch_open_at_kill9_of_edge_run_is_published_once_and_complete(
    tmp_path: Path, model_env: Path, shared_data: Path
) -> None:
    """``edge run`` at ``events.detail: crossings`` is killed with SIGKILL while a minute's batch
    has crossings, then started again: that minute's ``crossings`` event comes once and holds the
    crossings from before the kill; no line event is sent."""
    video, lines = _clip(shared_data, "count-highway-cctv")
    cfg, log = _run_config(tmp_path, video, lines, detail="crossings"), tmp_path / "edge.log"
    state = tmp_path / "state" / "edge-counts.sqlite3"
    open_start, before = _kill9_when(cfg, log, lambda: _open_batch(state))
    assert not [e for e in _events(tmp_path) if e["type"] == "crossings" and _epoch(e["attrs"]["from"]) == open_start]
    events = _run_past(cfg, log, tmp_path, "crossings", open_start)  # the minute after the killed one is sent too
    assert not [e for e in events if e["type"] in ("line", "track")]
    batches = [e for e in events if e["type"] == "crossings"]
    assert len({e["id"] for e in batches}) == len(batches), "a batch was published twice"
    spanning = [e for e in batches if _epoch(e["attrs"]["from"]) == open_start]
    assert len(spanning) == 1, [e["attrs"]["from"] for e in batches]
    a = spanning[0]["attrs"]
    col = {c: i for i, c in enumerate(a["cols"])}
    sent = {(r[col["track"]], round(open_start + r[col["t"]], 3)) for r in a["rows"]}
    assert {(track, t) for track, t in before} <= sent, (before, sent)


def test_crossings_batch_stays_under_the_fleets_event_size() -> None:
    """Crossings with long values (plate hashes, road names) are cut into events the fleet takes
    (at most 64 KiB each), none lost."""
    from edge.counts.processor import CountProcessor
    from edge.fleet.validate import MAX_EVENT_BYTES

    proc = CountProcessor("dev", set(), Intervals(15, "UTC"), None, batched={"road"})
    t0 = 1_800_000_000.0
    out: list[Event] = []
    for i in range(500):
        e = _described_line("road", t0 + i * 0.1, i)
        e.attrs.update(plate_hash="f" * 64, road="R" * 100)
        out += proc.process(e)
    out += proc.close()
    sizes = [len(e.model_copy(update={"device": "dev", "seq": 10**9}).to_bytes()) for e in out]
    assert len(out) > 1 and max(sizes) < MAX_EVENT_BYTES, sizes
    assert sum(len(e.attrs["rows"]) for e in out) == 500
