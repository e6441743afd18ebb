"""Visits: entry and exit crossings pair up by track or (fuzzy) plate, survive restarts and kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from edge.events.schema import utc_iso
from tests.test_rules_support import at, engine, line, of, plate

T0 = at("2026-11-23 10:00")


def test_entry_then_exit_on_one_camera_pairs_by_track() -> None:
    eng = engine()
    start = of(eng.process(line(T0, "in", road="Main Road", type="car")), "visit", "start")
    assert len(start) == 1 and start[0].attrs["status"] == "open"
    assert start[0].attrs["road_in"] == "Main Road" and start[0].attrs["time_in"] == utc_iso(T0)
    assert eng.open_counts()["visits"] == 1
    end = of(eng.process(line(T0 + 300, "out", road="Bypass")), "visit", "end")
    assert len(end) == 1
    a = end[0].attrs
    assert (a["status"], a["entry_camera"], a["exit_camera"], a["road_out"]) == ("closed", "gate", "gate", "Bypass")
    assert a["duration"] == 300 and a["type"] == "car" and a["visit"] == start[0].attrs["visit"]
    assert eng.open_counts()["visits"] == 0


def test_exit_on_another_camera_pairs_by_fuzzy_plate() -> None:
    eng = engine(visits={"plate_max_distance": 1})
    eng.process(line(T0, "in", role="entry", track=4, plate="CA123456"))
    eng.process(line(T0 + 10, "in", role="entry", track=5, plate="GP777"))
    # the exit camera misreads one character, and its track id means nothing on the entry camera
    out = eng.process(line(T0 + 900, "out", role="exit", camera="back", track=4, plate="CA123458", road="C"))
    (end,) = of(out, "visit", "end")
    assert end.camera == "back" and end.attrs["plate"] == "CA123456" and end.attrs["exit_camera"] == "back"
    assert eng.open_counts()["visits"] == 1  # GP777 still inside


def test_plate_outside_match_window_or_too_different_does_not_close() -> None:
    eng = engine(visits={"plate_max_distance": 1, "match_window": 3600})
    eng.process(line(T0, "in", role="entry", plate="CA123456"))
    assert eng.process(line(T0 + 60, "out", role="exit", camera="back", track=9, plate="CA129956")) == []
    assert eng.process(line(T0 + 7200, "out", role="exit", camera="back", track=9, plate="CA123456")) == []
    assert eng.open_counts()["visits"] == 1


def test_later_plate_and_type_update_the_open_visit() -> None:
    eng = engine()
    eng.process(line(T0, "in", role="entry", track=3))
    (upd,) = of(eng.process(plate(T0 + 2, "ND45678", track=3, type="truck")), "visit", "update")
    assert upd.attrs["plate"] == "ND45678" and upd.attrs["type"] == "truck"
    # the plate alone now pairs the exit on another camera
    (end,) = of(eng.process(line(T0 + 60, "out", role="exit", camera="back", track=1, plate="ND45678")), "visit")
    assert end.attrs["status"] == "closed" and end.attrs["type"] == "truck"


def test_a_second_entry_crossing_of_the_same_track_does_not_open_another_visit() -> None:
    eng = engine()
    eng.process(line(T0, "in"))
    assert of(eng.process(line(T0 + 1, "in")), "visit", "start") == []
    assert eng.open_counts()["visits"] == 1


def test_zone_roles_open_and_close_visits() -> None:
    eng = engine()
    (s,) = of(eng.process(_zone(T0, "entry", "north-gate")), "visit", "start")
    assert s.attrs["road_in"] == "north-gate"
    (e,) = of(eng.process(_zone(T0 + 30, "exit", "south-gate")), "visit", "end")
    assert e.attrs["road_out"] == "south-gate"


def _zone(t: float, role: str, name: str):  # noqa: ANN202
    from tests.test_rules_support import ev

    return ev("zone", t, phase="start", zone=name, role=role, occupancy=1)


def test_an_open_visit_past_its_limit_becomes_unresolved_on_tick() -> None:
    eng = engine(visits={"unresolved_after": 3600})
    eng.process(line(T0, "in"))
    assert eng.tick(T0 + 3599) == []
    (end,) = of(eng.tick(T0 + 3600), "visit", "end")
    assert end.attrs["status"] == "unresolved" and end.attrs["duration"] == 3600
    assert eng.open_counts()["visits"] == 0
    assert eng.process(line(T0 + 3700, "out")) == []  # a late exit finds nothing to close


def test_own_visit_and_anomaly_events_are_ignored() -> None:
    eng = engine()
    out = eng.process(line(T0, "in"))
    assert all(eng.process(e) == [] for e in out)


def test_open_visit_survives_a_restart_and_closes_after_it(tmp_path: Path) -> None:
    db = tmp_path / "rules.sqlite3"
    eng = engine(store=db)
    (s,) = of(eng.process(line(T0, "in", plate="CA1")), "visit")
    eng.close()
    eng2 = engine(store=db)
    assert eng2.open_counts()["visits"] == 1
    (e,) = of(eng2.process(line(T0 + 50, "out")), "visit")
    assert e.attrs["visit"] == s.attrs["visit"] and e.attrs["time_in"] == utc_iso(T0)
    eng2.close()
    assert engine(store=db).open_counts()["visits"] == 0


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tests.test_rules_support import engine, line, of
    eng = engine(store=Path(sys.argv[1]))
    (s,) = of(eng.process(line(float(sys.argv[2]), "in", track=7, plate="CA987654", road="A")), "visit")
    print(s.attrs["visit"], flush=True)
    time.sleep(60)
    """
)


def test_kill_9_mid_visit_keeps_the_visit_and_closes_it_after_restart(tmp_path: Path) -> None:
    db = tmp_path / "rules.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(T0)], stdout=subprocess.PIPE, env=env,
                             text=True)  # fmt: skip
    try:
        assert child.stdout is not None
        visit_id = child.stdout.readline().strip()
        assert len(visit_id) == 32
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    eng = engine(store=db)
    assert eng.open_counts()["visits"] == 1
    # after a restart the pipeline's track ids start again: the exit pairs by plate on the exit camera
    (end,) = of(eng.process(line(T0 + 600, "out", camera="back", track=1, plate="CA987654", road="B")), "visit")
    a = end.attrs
    assert (a["visit"], a["status"], a["road_in"], a["road_out"]) == (visit_id, "closed", "A", "B")
    assert a["time_in"] == utc_iso(T0) and a["duration"] == 600
    assert eng.open_counts()["visits"] == 0


def test_the_same_plate_entering_again_ends_the_stale_visit_and_the_exit_closes_the_new_one() -> None:
    eng = engine(visits={"merge_window": 60})
    eng.process(line(T0, "in", role="entry", track=1, plate="CA555"))  # its exit is never seen
    out = eng.process(line(T0 + 86000, "in", role="entry", track=2, plate="CA555"))
    assert [(e.phase, e.attrs["status"]) for e in of(out, "visit")] == [("end", "unresolved"), ("start", "open")]
    new_id = out[-1].attrs["visit"]
    (end,) = of(eng.process(line(T0 + 86100, "out", role="exit", camera="back", track=1, plate="CA555")), "visit")
    assert end.attrs["visit"] == new_id and end.attrs["duration"] == 100
