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


def _run_config(tmp_path: Path, video: Path, lines: dict[str, Any]) -> Path:
    data = {
        "device_id": "dev-k",
        "cameras": {"road": {"url": str(video), "loop": True, "realtime": True, "lines": lines}},
        "counts": {"interval_minutes": KILL_INTERVAL_S / 60},
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


def test_interval_open_at_kill9_is_published_once_and_complete(
    tmp_path: Path, model_env: Path, shared_data: Path
) -> None:
    """``edge run`` is killed with SIGKILL in the middle of an interval that already has crossings,
    then started again: that interval's count event comes once and holds the crossings from
    before the kill; every interval's counts equal the line events in it."""
    video, lines = _clip(shared_data, "count-highway-cctv")
    cfg, log = _run_config(tmp_path, video, lines), tmp_path / "edge.log"
    proc = _start(cfg, log)
    try:
        _wait(lambda: [e for e in _events(tmp_path) if e["type"] == "line"], 240, proc, log)
        before = {e["id"] for e in _events(tmp_path) if e["type"] == "line"}
        killed_at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    open_start = Intervals(KILL_INTERVAL_S / 60, "UTC").start(killed_at)
    assert not [e for e in _events(tmp_path) if e["type"] == "count" and _epoch(e["attrs"]["from"]) == open_start]

    proc = _start(cfg, log)
    try:

        def next_closed() -> bool:  # the interval after the killed one is published too
            return any(_epoch(e["attrs"]["from"]) > open_start for e in _events(tmp_path) if e["type"] == "count")

        _wait(next_closed, 240, proc, log)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    events = _events(tmp_path)
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


def test_counts_detail_sends_only_counts_and_anomalies(tmp_path: Path) -> None:
    """A camera at ``events.detail: counts`` sends no track or line events, the count event goes
    out; a ``tracks`` camera beside it still sends everything; crossings are still counted."""
    out = tmp_path / "events.jsonl"
    app = parse_config(
        {
            "cameras": {
                "quiet": {"url": "a.mp4", "events": {"detail": "counts"}, "lines": _LINE},
                "full": {"url": "b.mp4", "lines": _LINE},
            },
            "outputs": {"jsonl": str(out)},
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        },
        "<test>",
    )
    bus, _ = build_delivery(app)
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
