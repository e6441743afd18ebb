"""Each built-in rule kind on hand-built events with simulated time: one situation, one anomaly."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.events.schema import epoch, utc_iso
from tests.test_rules_support import at, engine, ev, line, of, plate, state

AFTER_HOURS = {
    "id": "after-hours",
    "kind": "after_hours",
    "timezone": "Africa/Johannesburg",
    "open": {"mon-fri": "07:00-19:00", "exceptions": {"2026-12-25": "closed"}},
}


def test_entry_at_1907_on_a_weekday_raises_exactly_one_after_hours_anomaly() -> None:
    eng = engine([AFTER_HOURS])
    t = at("2026-11-23 19:07")  # a Monday
    entry = line(t, "in", road="Bypass Street", type="truck")
    out = eng.process(entry)
    (a,) = of(out, "anomaly")
    assert a.phase == "start" and a.camera == "gate"
    assert a.attrs["reason"] == (
        "truck entered via Bypass Street at 19:07, after hours (mon-fri 07:00-19:00 Africa/Johannesburg)"
    )
    assert (a.attrs["rule"], a.attrs["kind"], a.attrs["severity"], a.attrs["state"]) == (
        "after-hours", "after_hours", "warning", "raised")  # fmt: skip
    assert a.attrs["visit"] == of(out, "visit")[0].attrs["visit"]
    assert a.attrs["evidence"] == [entry.id] and a.attrs["snapshot"] == entry.id and a.track == 1
    # the same vehicle crossing again, its plate read, more ticks: still one anomaly
    more = eng.process(line(t + 1, "in", road="Bypass Street", type="truck")) + eng.tick(t + 60)
    assert of(more, "anomaly", "start") == []
    assert eng.open_counts()["anomalies"] == {("after-hours", "warning"): 1}


def test_entry_at_1000_raises_none_and_a_holiday_raises_one() -> None:
    eng = engine([AFTER_HOURS])
    assert of(eng.process(line(at("2026-11-23 10:00"), "in")), "anomaly") == []
    (a,) = of(eng.process(line(at("2026-12-25 10:00"), "in", track=2)), "anomaly")  # Christmas, a Friday
    assert "entered via A at 10:00" in a.attrs["reason"]


def test_special_hours_and_overnight_ranges() -> None:
    rule = {**AFTER_HOURS, "open": {"mon-sun": "22:00-06:00", "exceptions": {"2026-11-24": "24h"}}}
    eng = engine([rule])
    assert of(eng.process(line(at("2026-11-23 23:30"), "in", track=1)), "anomaly") == []
    assert of(eng.process(line(at("2026-11-24 03:00"), "in", track=2)), "anomaly") == []  # yesterday's range
    assert of(eng.process(line(at("2026-11-24 12:00"), "in", track=3)), "anomaly") == []  # special hours
    assert len(of(eng.process(line(at("2026-11-25 12:00"), "in", track=4)), "anomaly")) == 1


ROADS = {"id": "roads", "kind": "wrong_road", "allowed": {"A": ["A", "B"]}, "by_type": {"truck": {"A": ["A"]}}}


def test_road_a_in_and_c_out_raises_exactly_one_road_anomaly() -> None:
    eng = engine([ROADS])
    t = at("2026-11-23 10:00")
    eng.process(line(t, "in", road="A", plate="CA1"))
    out = eng.process(line(t + 60, "out", road="C", camera="back", track=8, plate="CA1"))
    (a,) = of(out, "anomaly")
    assert a.attrs["reason"] == "vehicle CA1 entered via A and left via C; allowed from A: A, B"
    assert a.camera == "back" and a.attrs["visit"] == of(out, "visit")[0].attrs["visit"]
    assert eng.open_counts()["anomalies"] == {("roads", "warning"): 1}


def test_road_a_in_and_b_out_raises_none_but_not_for_a_truck() -> None:
    eng = engine([ROADS])
    t = at("2026-11-23 10:00")
    eng.process(line(t, "in", road="A"))
    assert of(eng.process(line(t + 60, "out", road="B")), "anomaly") == []
    eng.process(line(t, "in", road="A", track=2, type="truck"))
    (a,) = of(eng.process(line(t + 60, "out", road="B", track=2)), "anomaly")
    assert "for a truck" in a.attrs["reason"]


def test_overstay_raises_on_tick_and_resolves_when_the_visit_closes() -> None:
    eng = engine([{"id": "overstay", "kind": "overstay", "max_seconds": 1800, "severity": "critical"}])
    t = at("2026-11-23 10:00")
    eng.process(line(t, "in", type="car"))
    assert eng.tick(t + 1800) == []
    (a,) = of(eng.tick(t + 1801), "anomaly", "start")
    assert a.attrs["reason"] == "car on site for 30 min since 08:00 (limit 30 min)"  # UTC default zone
    assert of(eng.tick(t + 1900), "anomaly") == []
    out = eng.process(line(t + 2000, "out"))
    (end,) = of(out, "anomaly", "end")
    assert end.attrs["state"] == "resolved" and end.attrs["by"] == "auto" and end.attrs["anomaly"] == a.attrs["anomaly"]


def test_overstay_waits_for_late_exits_and_never_outlives_the_visit() -> None:
    """The exit crossing of a track that coasts is reported ``max_age`` s late (at its track end,
    with the crossing time): the appliance's engine judges ticks that much behind, so a visit that
    ended before the limit raises nothing, and one that ends after it resolves after the raise."""
    from edge.clock import ManualClock
    from edge.config import parse_config
    from edge.rules import build_processors

    rules = [{"id": "overstay", "kind": "overstay", "max_seconds": 60}]
    app = parse_config({"cameras": {"gate": {"url": "clip.mp4", "tracker": {"max_age": 2.0}}}, "rules": rules})
    (eng,) = build_processors(app, ManualClock(0), None, persist=False)
    t = at("2026-11-23 10:00")
    out = eng.process(line(t, "in", type="car"))
    out += eng.tick(t + 61) + eng.tick(t + 62)  # the car left at t + 59.5; its track is still coasting
    out += eng.process(line(t + 59.5, "out"))
    assert of(out, "anomaly") == [] and len(of(out, "visit", "end")) == 1
    out = eng.process(line(t + 100, "in", type="car", track=2))
    out += eng.tick(t + 163.5) + eng.tick(t + 164.5)
    (a,) = of(out, "anomaly", "start")
    out = eng.process(line(t + 162, "out", track=2))
    (end,) = of(out, "anomaly", "end")
    assert epoch(a.ts) <= t + 162 <= epoch(end.ts)


def test_no_exit_by_deadline() -> None:
    eng = engine([{"id": "home-time", "kind": "no_exit_by", "deadline": "18:00", "days": "mon-fri"}],
                 timezone="Africa/Johannesburg")  # fmt: skip
    eng.process(line(at("2026-11-23 10:00"), "in"))
    assert eng.tick(at("2026-11-23 17:59")) == []
    (a,) = of(eng.tick(at("2026-11-23 18:00")), "anomaly")
    assert a.attrs["reason"] == "vehicle still on site at 18:00 Africa/Johannesburg"
    eng.process(line(at("2026-11-23 18:05"), "in", track=2))  # entered after the deadline: not late yet
    assert of(eng.tick(at("2026-11-23 18:10")), "anomaly") == []


def test_plate_watch_raises_one_anomaly_per_plate_and_updates_on_repeats() -> None:
    eng = engine([{"id": "watch", "kind": "plate_watch"}])
    t = at("2026-11-23 10:00")
    assert of(eng.process(plate(t, "CA111", list="allow")), "anomaly") == []
    (a,) = of(eng.process(plate(t, "CA999", list="watch", type="car", track=2)), "anomaly")
    assert a.phase == "start" and a.attrs["severity"] == "critical" and a.attrs["reason"] == (
        "watch-listed plate CA999 (car) seen on gate")  # fmt: skip
    (u,) = of(eng.process(plate(t + 5, "CA999", list="watch", camera="back", track=7)), "anomaly")
    assert u.phase == "update" and u.attrs["state"] == "updated" and u.attrs["tracks"] == [2, 7]
    assert u.attrs["count"] == 2 and len(u.attrs["evidence"]) == 2
    assert eng.open_counts()["anomalies"][("watch", "critical")] == 1


def test_state_held_fires_after_n_minutes_and_resolves_when_the_state_ends() -> None:
    eng = engine([{"id": "no-taxi", "kind": "state_held", "label": "no_taxi", "minutes": 10}])
    t = at("2026-11-23 10:00")
    assert eng.process(state(t, "no_taxi", "start")) == []
    for s in range(0, 600, 30):
        assert eng.tick(t + s) == []
    (a,) = of(eng.tick(t + 601), "anomaly", "start")
    assert a.camera == "rank" and a.attrs["reason"] == "state no_taxi held for 10 min on rank (limit 10 min)"
    assert of(eng.tick(t + 700), "anomaly") == []
    (end,) = of(eng.process(state(t + 900, "no_taxi", "end")), "anomaly", "end")
    assert end.attrs["anomaly"] == a.attrs["anomaly"] and end.attrs["state"] == "resolved"
    assert eng.tick(t + 2000) == []


def test_occupancy_over_capacity_raises_once_and_resolves_when_it_drops() -> None:
    eng = engine([{"id": "dock-full", "kind": "occupancy", "zone": "dock", "capacity": 2}])
    t = at("2026-11-23 10:00")

    def z(i: int, phase: str, occ: int):  # noqa: ANN202
        return ev("zone", t + i, track=i, phase=phase, zone="dock", occupancy=occ)

    assert of(eng.process(z(1, "start", 2)), "anomaly") == []
    (a,) = of(eng.process(z(2, "start", 3)), "anomaly", "start")
    assert a.attrs["reason"] == "3 objects in zone dock on gate (capacity 2)"
    (u,) = of(eng.process(z(3, "start", 4)), "anomaly", "update")
    assert u.attrs["tracks"] == [2, 3]
    assert of(eng.process(z(3, "end", 3)), "anomaly") == []
    assert len(of(eng.process(z(2, "end", 2)), "anomaly", "end")) == 1


def test_loitering_on_sightings_and_from_dwell() -> None:
    eng = engine([{"id": "loiter", "kind": "loitering", "zones": ["kerb"], "max_seconds": 120}])
    t = at("2026-11-23 10:00")
    eng.process(ev("zone", t, track=1, phase="start", zone="kerb", type="car", zones=["kerb"]))
    assert eng.tick(t + 121) == []  # the clock alone proves nothing: the car may have gone
    assert of(eng.process(ev("track", t + 120, track=1, phase="update", type="car", zones=["kerb"])), "anomaly") == []
    (a,) = of(eng.process(ev("track", t + 125.5, track=1, phase="update", type="car", zones=["kerb"])), "anomaly")
    assert a.phase == "start" and a.ts == utc_iso(t + 125.5)
    assert a.attrs["reason"] == "car in zone kerb for 125.5 s (limit 120 s)"
    left = eng.process(ev("zone", t + 200, track=1, phase="end", zone="kerb", dwell=200))
    assert len(of(left, "anomaly", "end")) == 1
    # no sighting in between: the dwell on leaving still raises (and resolves, the object left)
    out = eng.process(ev("zone", t + 300, track=2, phase="start", zone="kerb"))
    out += eng.process(ev("zone", t + 500, track=2, phase="end", zone="kerb", dwell=200))
    assert [e.phase for e in of(out, "anomaly")] == ["start", "end"]
    assert of(eng.process(ev("zone", t, track=3, phase="start", zone="other")), "anomaly") == []


def test_loitering_never_counts_coasting_after_the_last_sighting() -> None:
    """Issue 20: a track coasts ``max_age`` s after its last detection, then its zone end arrives
    carrying the last-sighting time. Ticks in between must not raise; a stay over the limit is
    raised at a sighting (never after the object left) and resolved no earlier than raised."""
    eng = engine([{"id": "loiter", "kind": "loitering", "max_seconds": 2}])
    t = at("2026-12-07 14:53")
    seen = dict(phase="update", type="car", zones=["lot"])
    # car 1: in the zone 1.6 s, then not detected; the pipeline ticks on through its coasting
    out = eng.process(ev("zone", t, track=1, phase="start", zone="lot", type="car", zones=["lot"]))
    out += eng.process(ev("track", t + 1.0, track=1, **seen))
    for dt in (2.5, 3.0, 3.5):
        out += eng.tick(t + dt)
    out += eng.process(ev("zone", t + 1.6, track=1, phase="end", zone="lot", dwell=1.6, type="car"))
    out += eng.process(ev("track", t + 1.6, track=1, phase="end", type="car"))
    assert of(out, "anomaly") == [], [e.attrs["reason"] for e in of(out, "anomaly")]
    # car 2: seen in the zone 2.5 s after entering, last seen at 2.64 s, then coasts
    out = eng.process(ev("zone", t + 10, track=2, phase="start", zone="lot", type="car", zones=["lot"]))
    out += eng.process(ev("track", t + 11, track=2, **seen)) + eng.tick(t + 11.5)
    out += eng.process(ev("track", t + 12.5, track=2, **seen))
    for dt in (13.0, 14.0, 14.6):
        out += eng.tick(t + dt)
    out += eng.process(ev("zone", t + 12.64, track=2, phase="end", zone="lot", dwell=2.64, type="car"))
    out += eng.process(ev("track", t + 12.64, track=2, phase="end", type="car"))
    raised, resolved = of(out, "anomaly", "start"), of(out, "anomaly", "end")
    assert len(raised) == len(resolved) == 1
    assert raised[0].ts == utc_iso(t + 12.5) and resolved[0].ts == utc_iso(t + 12.64)
    assert raised[0].attrs["reason"] == "car in zone lot for 2.5 s (limit 2 s)"


def test_updated_and_resolved_never_carry_a_time_before_raised() -> None:
    """A late event (the zone end of an occupancy count) cannot date a resolve before the raise."""
    eng = engine([{"id": "dock-full", "kind": "occupancy", "zone": "dock", "capacity": 1}])
    t = at("2026-11-23 10:00")
    out = eng.process(ev("zone", t, track=1, phase="start", zone="dock", occupancy=1))
    out += eng.process(ev("zone", t + 5, track=2, phase="start", zone="dock", occupancy=2))
    out += eng.process(ev("zone", t + 3, track=1, phase="end", zone="dock", occupancy=1))  # reported late
    (a,) = of(out, "anomaly", "start")
    (end,) = of(out, "anomaly", "end")
    assert a.ts == utc_iso(t + 5) and end.ts == utc_iso(t + 5)


def test_type_not_allowed_in_a_zone_and_on_site() -> None:
    eng = engine([{"id": "no-trucks", "kind": "type_not_allowed", "types": ["truck"], "zones": ["yard"]}])
    t = at("2026-11-23 10:00")
    assert of(eng.process(ev("zone", t, track=1, phase="start", zone="yard", type="car")), "anomaly") == []
    (a,) = of(eng.process(ev("zone", t, track=2, phase="start", zone="yard", type="truck")), "anomaly")
    assert a.attrs["reason"] == "truck entered zone yard on gate; truck not allowed"
    eng.process(line(t, "in", track=5))
    (v,) = of(eng.process(plate(t + 1, "X1", track=5, type="truck")), "anomaly")  # type known from the plate read
    assert v.attrs["visit"] and "not allowed on site" in v.attrs["reason"]


def test_cameras_filter_and_disabled_rules() -> None:
    eng = engine([{**AFTER_HOURS, "cameras": ["back"]}, {**AFTER_HOURS, "id": "off", "enabled": False}])
    assert of(eng.process(line(at("2026-11-23 22:00"), "in")), "anomaly") == []
    assert len(of(eng.process(line(at("2026-11-23 22:00"), "in", camera="back")), "anomaly")) == 1


def test_resolve_after_auto_resolves_one_off_anomalies() -> None:
    eng = engine([{**AFTER_HOURS, "resolve_after": 3600}])
    t = at("2026-11-23 22:00")
    eng.process(line(t, "in"))
    assert of(eng.tick(t + 3599), "anomaly") == []
    (end,) = of(eng.tick(t + 3600), "anomaly", "end")
    assert end.attrs["by"] == "auto"


@pytest.mark.parametrize("on", ["track"])
def test_after_hours_on_any_new_track(on: str) -> None:
    eng = engine([{**AFTER_HOURS, "on": on}])
    (a,) = of(eng.process(ev("track", at("2026-11-23 23:00"), phase="start", type="person")), "anomaly")
    assert a.attrs["reason"].startswith("person seen on gate at 23:00, after hours")


def test_wrong_road_pairs_as_a_list_and_after_hours_without_visits() -> None:
    eng = engine([{**ROADS, "allowed": [["A", "A"], "A->B"], "by_type": {}}, AFTER_HOURS], visits={"enabled": False})
    t = at("2026-11-23 22:00")
    out = eng.process(line(t, "in", road="Bypass Street", type="truck"))
    assert of(out, "visit") == [] and len(of(out, "anomaly")) == 1
    cfg = eng.cfg.rules["roads"]
    assert cfg.allowed == {"A": ["A", "B"]}  # type: ignore[union-attr]


def test_a_loitering_anomaly_left_open_by_a_restart_is_resolved_on_the_next_tick(tmp_path: Path) -> None:
    rule = {"id": "loiter", "kind": "loitering", "max_seconds": 10}
    eng = engine([rule], store=tmp_path / "r.sqlite3")
    t = at("2026-11-23 10:00")
    eng.process(ev("zone", t, track=1, phase="start", zone="kerb"))
    assert len(of(eng.process(ev("track", t + 11, track=1, phase="update", zones=["kerb"])), "anomaly", "start")) == 1
    eng.close()
    eng = engine([rule], store=tmp_path / "r.sqlite3")
    (end,) = of(eng.tick(t + 20), "anomaly", "end")
    assert end.attrs["by"] == "auto" and eng.open_counts()["anomalies"] == {}
    eng.close()
