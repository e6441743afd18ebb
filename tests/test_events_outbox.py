"""Outbox, persistent sequence numbers, sinks and the event bus (no broker needed)."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from edge.events.bus import EventBus
from edge.events.outbox import DISK_SLACK, ROW_OVERHEAD, Outbox
from edge.events.schema import Event
from edge.events.sequence import PersistentSequencer
from edge.events.sinks import FanOut, JsonlSink, Sink, StdoutSink
from tests.fixtures.mqtt import sample_event


def test_outbox_fifo_ack_and_survives_reopen(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    ids = [ob.put(f"t/{i}", f"p{i}".encode()) for i in range(10)]
    assert ob.depth == 10
    rows = ob.fetch_after(0, 4)
    assert [r.payload for r in rows] == [b"p0", b"p1", b"p2", b"p3"]
    ob.ack([rows[0].id, rows[1].id, 999_999])  # unknown ids are ignored
    assert ob.depth == 8
    assert ob.fetch_after(ids[5] or 0, 100)[0].payload == b"p6"
    ob.close()
    ob2 = Outbox(tmp_path / "o.db")  # a restart: the backlog is still there, in order
    assert ob2.depth == 8
    assert [r.payload for r in ob2.fetch_after(0, 100)] == [f"p{i}".encode() for i in range(2, 10)]
    assert ob2.stats().oldest_age() >= 0
    ob2.close()


def test_outbox_drop_oldest_when_full(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    budget = 64 * 1024
    ob = Outbox(tmp_path / "o.db", max_bytes=budget)
    payload = sample_event().to_bytes()
    n = 1000
    with caplog.at_level(logging.WARNING, logger="edge.events.outbox"):
        for i in range(n):
            assert ob.put("edge/d/c/events/track", payload + str(i).encode()) is not None
    st = ob.stats()
    assert st.bytes <= budget
    assert st.dropped > 0 and st.dropped + st.depth == n
    kept = [r.payload for r in ob.fetch_after(0, n)]
    assert kept[-1].endswith(b"999") and kept[0].endswith(str(st.dropped).encode())  # newest kept
    assert "outbox full" in caplog.text
    ob.close()


def test_outbox_drop_newest_policy(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", max_bytes=64 * 1024, when_full="drop_newest")
    size = 1000
    accepted = [ob.put("t", bytes(size)) for _ in range(100)]
    assert None in accepted
    first_rejected = accepted.index(None)
    # the byte accounting alone would take 61; the disk bound (shm, WAL, page fill) takes fewer
    assert 10 < first_rejected <= (64 * 1024) // (size + 1 + ROW_OVERHEAD)
    assert accepted[first_rejected:] == [None] * (100 - first_rejected)  # refused from then on
    assert ob.stats().dropped == 100 - first_rejected
    assert ob.fetch_after(0, 1)[0].id == accepted[0]  # the oldest stays
    ob.close()


def disk_bytes(db: Path) -> int:
    """What the outbox occupies on disk: the database, its WAL and its WAL index."""
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())


@pytest.mark.parametrize("budget", [64 * 1024, 1024 * 1024])
def test_outbox_disk_files_stay_within_budget(tmp_path: Path, budget: int) -> None:
    """db + -wal + -shm never exceed the budget by more than DISK_SLACK, with the sequencer in
    the same file and acks interleaved (the real layout); and the outbox still holds events."""
    db = tmp_path / "state.db"
    ob = Outbox(db, max_bytes=budget)
    seq = PersistentSequencer(db)
    payload = sample_event().to_bytes()
    n = 2000 if budget < 1024 * 1024 else 5000  # both fill the budget several times over
    peak = 0
    for i in range(n):
        seq.next("cam1")
        ob.put("edge/edge-1/cam1/events/track", payload + str(i).encode())
        if i % 10 == 0:
            ob.ack(r.id for r in ob.fetch_after(0, 2))  # the broker acknowledges now and then
        peak = max(peak, disk_bytes(db))
    st = ob.stats()
    print(f"\noutbox budget {budget} B: peak on disk {peak} B (slack {peak - budget:+d} B), depth {st.depth}")
    assert peak <= budget + DISK_SLACK
    assert st.dropped > 0 and st.depth * len(payload) > budget / 8  # not met by storing (almost) nothing
    assert ob.fetch_after(0, n)[-1].payload.endswith(str(n - 1).encode())
    assert st.disk_bytes == disk_bytes(db)  # what /metrics shows as edge_outbox_disk_bytes
    seq.close()
    ob.close()
    assert disk_bytes(db) <= budget + DISK_SLACK


def test_persistent_sequencer_increases_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    s = PersistentSequencer(path, block=10)
    a = [s.next("cam1") for _ in range(25)]
    assert a == list(range(25)) and s.next("cam2") == 0
    s.close()
    s = PersistentSequencer(path, block=10)  # clean restart: no gap
    assert s.next("cam1") == 25
    for _ in range(3):
        s.next("cam1")
    s._db.close()  # simulate a crash: close() never runs
    s = PersistentSequencer(path, block=10)
    n = s.next("cam1")
    assert 29 <= n <= 29 + 10  # never repeats, gap < block
    s.close()


class Boom(Sink):
    name = "boom"

    def emit(self, event: Event) -> None:
        raise OSError("disk full")


def test_bus_stamps_seq_and_fans_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    jsonl = tmp_path / "events.jsonl"
    seen: list[Event] = []
    bus = EventBus(
        "dev9",
        FanOut([Boom(), JsonlSink(jsonl), StdoutSink(out)]),
        PersistentSequencer(tmp_path / "s.db"),
        on_event=seen.append,
    )
    with caplog.at_level(logging.ERROR):
        for i in range(5):
            bus.emit(sample_event("cam1", i, seq=0))
            bus.emit(sample_event("cam2", i, seq=0))
    bus.close()
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert lines == [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["seq"] for x in lines if x["camera"] == "cam1"] == list(range(5))
    assert all(x["device"] == "dev9" for x in lines)
    assert [e.id for e in seen] == [x["id"] for x in lines]
    assert bus.counts == {("cam1", "track"): 5, ("cam2", "track"): 5}
    assert caplog.text.count("sink boom failed") == 1  # rate-limited, and the other sinks still got everything
