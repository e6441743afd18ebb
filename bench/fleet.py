"""``edge fleet`` ingest benchmark: events/s stored by one worker, and by two workers sharing the
load through an MQTT shared subscription, from a real local mosquitto into a real database.

    python bench/fleet.py                      # PostgreSQL 15 started here (Debian's), 20,000 events
    python bench/fleet.py --database sqlite    # the zero-set-up default
    python bench/fleet.py --events 50000 --workers 1 2 3

Each worker is a real ``edge fleet --config F`` process (web off). The events (~330 B track and
line events, distinct ids, 20 devices) are stored twice: "live" (published with QoS 1 while the
workers run; seconds from the first publish until the database holds them all; the publisher
competes for the same cores) and "backlog" (published while the workers are stopped, held by the
broker for their persistent sessions; only the storing is timed, from the first stored event).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench.events import _free_port, start_mosquitto  # noqa: E402
from edge.fleet.store import FleetStore  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("EDGE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def start_postgres(workdir: Path) -> tuple[str, list[str]]:
    """initdb + pg_ctl start on 127.0.0.1 (as user postgres when root); returns (url, stop command)."""
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(workdir, "postgres")
    port, data = _free_port(), workdir / "data"
    run = lambda *a: subprocess.run([*as_user, *a], check=True, capture_output=True)  # noqa: E731
    run(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "fleet", "--no-sync")
    opts = f"-h 127.0.0.1 -p {port} -k {workdir} -c max_connections=50"
    run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(workdir / "log"), "-w", "start")
    return f"postgresql+psycopg://fleet@127.0.0.1:{port}/postgres", [
        *as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"
    ]  # fmt: skip


def make_events(n: int) -> list[tuple[str, bytes]]:
    out = []
    t0 = time.time()
    for i in range(n):
        dev, cam = f"dev{i % 20:02d}", "gate"
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + i / 50)) + ".000Z"
        typ = "line" if i % 10 == 0 else "track"
        e = {
            "v": 2, "id": uuid.uuid4().hex, "device": dev, "camera": cam, "type": typ, "phase": "update",
            "ts": ts, "seq": i, "track": i // 10, "label": "vehicle", "score": 0.912,
            "box": [0.3564, 0.3694, 0.6052, 0.9792], "start": ts,
            "attrs": {"type": "car", "color": "white", "plate": f"CA{i % 9999:04d}"},
        }  # fmt: skip
        out.append((f"edge/{dev}/{cam}/events/{typ}", json.dumps(e, separators=(",", ":")).encode()))
    return out


def publish(port: int, msgs: list[tuple[str, bytes]]) -> float:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}")
    c.max_inflight_messages_set(500)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    t = time.perf_counter()
    infos = [c.publish(topic, payload, qos=1) for topic, payload in msgs]
    for i in infos:
        i.wait_for_publish(120)
    dt = time.perf_counter() - t
    c.disconnect()
    c.loop_stop()
    return dt


def run_workers(n: int, url: str, port: int, msgs: list[tuple[str, bytes]], tmp: Path) -> tuple[float, float, float]:
    """(live events/s, publisher alone events/s, backlog events/s) for ``n`` workers."""
    store = FleetStore(url)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    files = []
    for i in range(n):
        cfg = {
            "database": url,
            "mqtt": {"host": "127.0.0.1", "port": port, "share_group": f"bench{n}", "client_id": f"bench-w{n}-{i}"},
            "web": {"enabled": False},
        }
        f = tmp / f"w{n}-{i}.yaml"
        f.write_text(json.dumps(cfg))
        files.append(f)

    def start(wait: float = 4.0) -> list[subprocess.Popen[bytes]]:
        procs = [subprocess.Popen([sys.executable, "-m", "edge", "fleet", "--config", str(f)], env=env) for f in files]
        time.sleep(wait)  # connected and subscribed
        return procs

    def stop(procs: list[subprocess.Popen[bytes]]) -> None:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)

    def clear() -> None:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM events")

    def wait_all(t: float) -> None:
        while store.count_events() < len(msgs):
            if time.perf_counter() - t > 180:
                raise SystemExit(f"only {store.count_events()} of {len(msgs)} stored after 180 s")
            time.sleep(0.05)

    try:
        # live: publishing while the workers store
        clear()
        procs = start()
        t = time.perf_counter()
        pub_s = publish(port, msgs)
        wait_all(t)
        live = len(msgs) / (time.perf_counter() - t)
        stop(procs)
        # backlog: the broker holds the events for the stopped workers' sessions; time only the storing
        clear()
        pub_s2 = publish(port, msgs)
        procs = start(wait=0)
        while store.count_events() == 0:
            time.sleep(0.02)
        t, first = time.perf_counter(), store.count_events()
        wait_all(t)
        backlog = (len(msgs) - first) / (time.perf_counter() - t)
        stop(procs)
        return live, len(msgs) / min(pub_s, pub_s2), backlog
    finally:
        store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--database", default="postgres", help="postgres (started here), sqlite, or a SQLAlchemy URL")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="edge-bench-fleet-"))
    stop_pg: list[str] | None = None
    pg_dir = tmp
    broker, port = start_mosquitto(tmp)
    try:
        if args.database == "postgres":
            pg_dir = Path(tempfile.mkdtemp(prefix="edge-bench-pg-"))  # its own: postgres must reach it
            url, stop_pg = start_postgres(pg_dir)
        elif args.database == "sqlite":
            url = f"sqlite:///{tmp / 'fleet.sqlite3'}"
        else:
            url = args.database
        msgs = make_events(args.events)
        size = sum(len(p) for _t, p in msgs) / len(msgs)
        print(f"{len(msgs)} events of ~{size:.0f} B, database {url.split(':')[0]}, {os.cpu_count()} cores, "
              f"load average before {os.getloadavg()[0]:.1f}")  # fmt: skip
        for n in args.workers:
            live, pub, backlog = run_workers(n, url, port, msgs, tmp)
            print(
                f"{n} worker(s): {backlog:,.0f} events/s stored from a backlog, {live:,.0f}/s while publishing "
                f"(publisher alone {pub:,.0f}/s; load average {os.getloadavg()[0]:.1f})"
            )
    finally:
        broker.terminate()
        broker.wait(10)
        if stop_pg:
            subprocess.run(stop_pg, capture_output=True)
            shutil.rmtree(pg_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
