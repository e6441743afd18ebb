"""Many cameras on one appliance: how many real-time RTSP cameras ``edge run`` holds.

    python3 bench/cameras.py --max 32          # N = 1, 2, 4, ... 32 (about 8 minutes)
    python3 bench/cameras.py --max 32 --baseline-max 8 --seconds 30 --out docs/cameras-bench.md

Starts the local GStreamer RTSP server (tests/tools/rtsp_server.py under /usr/bin/python3,
serving shared/data/videos/car-detection.mp4 looped) and a local mosquitto, then for each N runs
``python3 -m edge run`` (a subprocess) with N cameras on that stream and measures, after every
camera delivered its first frame:

* read / processed frames per second per camera (mean and the worst camera), frames dropped
  (% of the frames that reached the hand-over to the pipeline) - real time means the worst
  camera processes >= 95% of ``--fps`` and drops < 1%;
* CPU (edge process incl. inference threads, and its ffmpeg readers), resident memory of the
  edge process (and the ffmpeg readers together);
* start-up: seconds from launch until every camera's pipeline had a frame;
* frame -> MQTT: a subscriber compares each track start/update and plate event's ``ts`` (the
  capture time of the frame that caused it) with its arrival time, p50 / p95 (``end`` events
  are left out: their ``ts`` is the last sighting, ``max_age`` before the frame that ends them).
  Cameras send a track update every second (``tracker.update_interval: 1``) for more samples.

``--baseline-max`` also runs the old behaviour (``EDGE_SHARED_MODELS=0``: every camera loads
its own copy of every model) up to that N. ``--detect JSON`` adds detect settings to every
camera, e.g. ``'{"type_model": null, "burst_fps": null}'`` for the defaults before issue 22.
The machine's load (``os.getloadavg``) is printed with every row: other work on the machine
depresses every number.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import yaml  # noqa: E402

from tests.fixtures.mqtt import Broker, free_port  # noqa: E402
from tests.fixtures.rtsp import RtspServer  # noqa: E402

SHARED = Path(os.environ.get("EDGE_SHARED", ROOT.parent / "shared")).resolve()
VIDEO = SHARED / "data" / "videos" / "car-detection.mp4"
DEVICE = "bench"
_SAMPLE = re.compile(r'^(edge_\w+)\{camera="([^"]+)"\} ([0-9.eE+-]+)$', re.M)


@dataclass
class Row:
    n: int
    mode: str
    load: float = 0.0
    startup: float | None = None  # s until every camera had a frame in its pipeline
    read_fps: float = 0.0  # mean per camera
    proc_fps: float = 0.0  # mean per camera
    worst_fps: float = 0.0  # processed, worst camera
    drop_pct: float = 0.0
    cpu_edge: float = 0.0  # cores
    cpu_ffmpeg: float = 0.0
    cpu_machine: float = 0.0  # cores busy on the whole machine (RTSP server, broker, other jobs too)
    rss_edge: float = 0.0  # MB
    rss_ffmpeg: float = 0.0
    pss_ffmpeg: float = 0.0  # MB, proportional set size: shared libraries split between them
    p50: float | None = None  # ms
    p95: float | None = None
    events: int = 0
    exit_code: int | None = None
    stop_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def realtime(self, fps: float) -> bool:
        return (
            self.startup is not None
            and self.worst_fps >= 0.95 * fps
            and self.drop_pct < 1.0
            and self.p95 is not None
            and self.p95 < 300
        )


class Subscriber:
    """Collects (arrival, capture ts) of every event."""

    def __init__(self, port: int) -> None:
        import json

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.samples: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        self._json = json
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{os.getpid()}")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(f"edge/{DEVICE}/+/events/+", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: object) -> None:
        now = time.time()
        try:
            ev = self._json.loads(msg.payload)  # type: ignore[attr-defined]
            ts = ev["ts"]
        except (ValueError, KeyError):
            return
        if ev.get("type") not in ("track", "plate") or ev.get("phase") == "end":
            return  # an end's ts is the last sighting (max_age earlier), a line's the crossing
        from datetime import datetime

        t = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        with self._lock:
            self.samples.append((now, t))

    def window(self, t0: float, t1: float) -> list[float]:
        with self._lock:
            return [(a - t) * 1000 for a, t in self.samples if t0 <= a <= t1]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def scrape(port: int) -> dict[str, dict[str, float]]:
    """{metric: {camera: value}} for the per-camera samples of /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out: dict[str, dict[str, float]] = {}
    for name, cam, value in _SAMPLE.findall(text):
        out.setdefault(name, {})[cam] = float(value)
    return out


def cpu_and_rss(pid: int) -> tuple[float, float, float, float]:
    """(edge CPU s, ffmpeg CPU s, edge RSS MB, ffmpeg RSS MB) of the process tree now."""
    try:
        p = psutil.Process(pid)
        t = p.cpu_times()
        edge_cpu, edge_rss = t.user + t.system, p.memory_info().rss / 2**20
        ff_cpu = ff_rss = 0.0
        for c in p.children(recursive=True):
            try:
                ct = c.cpu_times()
                ff_cpu += ct.user + ct.system
                ff_rss += c.memory_info().rss / 2**20
            except psutil.Error:
                pass
        return edge_cpu, ff_cpu, edge_rss, ff_rss
    except psutil.Error:
        return 0.0, 0.0, 0.0, 0.0


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores, everything but idle/iowait)."""
    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


def ffmpeg_pss(pid: int) -> float:
    """Proportional set size (MB) of the ffmpeg readers together (shared pages split)."""
    total = 0.0
    try:
        for c in psutil.Process(pid).children(recursive=True):
            try:
                total += c.memory_full_info().pss / 2**20
            except (psutil.Error, AttributeError):
                pass
    except psutil.Error:
        pass
    return total


def write_config(path: Path, n: int, url: str, mqtt_port: int, metrics_port: int, args: argparse.Namespace) -> None:
    cams = {
        f"cam{i:02d}": {
            "url": url,
            "detect": {"fps": args.fps, **({"model": args.model} if args.model else {}), **args.detect},
            "decode": args.decode,
            "reconnect": {"open_timeout": 30},
            "tracker": {"update_interval": 1.0},  # more samples of frame -> MQTT
        }
        for i in range(n)
    }
    cfg = {
        "device_id": DEVICE,
        "cameras": cams,
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "stats_interval": 3600},
        "outbox": {"path": str(path.parent / f"outbox-{n}.sqlite3")},
        "metrics": {"port": metrics_port},
        "commands": {"enabled": False},
        "runtime": {"threads": args.threads, **({"concurrency": args.concurrency} if args.concurrency else {})},
    }
    path.write_text(yaml.safe_dump(cfg))


def run_one(n: int, shared: bool, url: str, broker: Broker, work: Path, args: argparse.Namespace) -> Row:
    row = Row(n, "shared" if shared else "no-share")
    cfg_path = work / f"cameras-{n}-{row.mode}.yaml"
    mport = free_port()
    write_config(cfg_path, n, url, broker.port, mport, args)
    env = dict(os.environ, PYTHONPATH=str(ROOT), EDGE_SHARED_MODELS="1" if shared else "0")
    env.setdefault("EDGE_MODEL_MIRROR", str(SHARED / "models"))
    env.setdefault("EDGE_MODEL_CACHE", str(work / "model-cache"))
    sub = Subscriber(broker.port)
    log = open(work / f"edge-{n}-{row.mode}.log", "wb")
    t_launch = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--config", str(cfg_path)], cwd=work, env=env, stdout=log, stderr=log
    )
    try:
        deadline = t_launch + args.start_timeout
        while time.monotonic() < deadline and proc.poll() is None:
            m = scrape(mport)
            frames = m.get("edge_pipeline_frames_total", {})
            if len(frames) == n and all(v > 0 for v in frames.values()):
                row.startup = time.monotonic() - t_launch
                break
            time.sleep(0.25)
        if row.startup is None:
            row.notes.append(f"not every camera had a frame within {args.start_timeout:g} s")
        time.sleep(args.warmup)
        a, ta, wa = scrape(mport), time.monotonic(), time.time()
        c0, m0 = cpu_and_rss(proc.pid), machine_busy()
        rss: list[tuple[float, float]] = []
        end = ta + args.seconds
        while time.monotonic() < end and proc.poll() is None:
            time.sleep(1.0)
            _, _, re_, rf = cpu_and_rss(proc.pid)
            rss.append((re_, rf))
        b, tb, wb = scrape(mport), time.monotonic(), time.time()
        c1, m1 = cpu_and_rss(proc.pid), machine_busy()
        row.pss_ffmpeg = ffmpeg_pss(proc.pid)
        dt = tb - ta
        row.load = os.getloadavg()[0]

        def delta(name: str) -> dict[str, float]:
            return {c: v - a.get(name, {}).get(c, 0.0) for c, v in b.get(name, {}).items()}

        read, proc_f, dropped = (
            delta("edge_camera_frames_read_total"),
            delta("edge_pipeline_frames_total"),
            delta("edge_camera_frames_dropped_total"),
        )
        if proc_f and dt > 0:
            row.read_fps = statistics.mean(read.values()) / dt if read else 0.0
            row.proc_fps = statistics.mean(proc_f.values()) / dt
            row.worst_fps = min(proc_f.get(f"cam{i:02d}", 0.0) for i in range(n)) / dt
            handed = sum(proc_f.values()) + sum(dropped.values())
            row.drop_pct = 100.0 * sum(dropped.values()) / handed if handed else 0.0
        row.cpu_edge = (c1[0] - c0[0]) / dt if dt > 0 else 0.0
        row.cpu_ffmpeg = (c1[1] - c0[1]) / dt if dt > 0 else 0.0
        row.cpu_machine = (m1 - m0) / dt if dt > 0 else 0.0
        if rss:
            row.rss_edge = statistics.median(r[0] for r in rss)
            row.rss_ffmpeg = statistics.median(r[1] for r in rss)
        lat = sorted(sub.window(wa, wb + 1.0))
        row.events = len(lat)
        if lat:
            row.p50 = lat[len(lat) // 2]
            row.p95 = lat[min(len(lat) - 1, int(len(lat) * 0.95))]
    finally:
        t_stop = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            row.exit_code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            row.exit_code = proc.wait()
            row.notes.append("SIGTERM did not stop it within 60 s")
        row.stop_s = time.monotonic() - t_stop
        sub.close()
        log.close()
    return row


HEADER = (
    "| N | mode | load | start s | read fps/cam | processed fps/cam (worst) | drops % "
    "| CPU edge+ffmpeg / machine (cores) "
    "| RSS edge MB (ffmpeg PSS) | frame->MQTT p50/p95 ms (events) | real time |"
)


def fmt(row: Row, fps: float) -> str:
    st = f"{row.startup:.1f}" if row.startup is not None else "-"
    lat = f"{row.p50:.0f}/{row.p95:.0f} ({row.events})" if row.p50 is not None and row.p95 is not None else "-"
    ok = "yes" if row.realtime(fps) else "NO"
    if row.exit_code not in (0, None):
        ok += f" (exit {row.exit_code})"
    return (
        f"| {row.n} | {row.mode} | {row.load:.1f} | {st} | {row.read_fps:.1f} "
        f"| {row.proc_fps:.2f} ({row.worst_fps:.2f}) "
        f"| {row.drop_pct:.2f} | {row.cpu_edge:.2f}+{row.cpu_ffmpeg:.2f} / {row.cpu_machine:.2f} "
        f"| {row.rss_edge:.0f} ({row.pss_ffmpeg:.0f}) "
        f"| {lat} | {ok} |"
    )


def _json_object(text: str) -> dict[str, Any]:
    """``--detect``'s value: a JSON object (argparse turns the ValueError into a one-line error)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"burst_fps\": null}'")
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max", type=int, default=32, help="largest N (N doubles from 1)")
    ap.add_argument("--counts", help="explicit comma-separated camera counts instead of 1, 2, 4 ... --max")
    ap.add_argument("--seconds", type=float, default=30.0, help="measuring window per N")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds after start-up before measuring")
    ap.add_argument("--start-timeout", type=float, default=60.0)
    ap.add_argument("--fps", type=float, default=5.0, help="detect fps per camera")
    ap.add_argument("--decode", default="all", choices=["all", "fast", "nonref", "key"])
    ap.add_argument("--model", default="", help="detect.model (default: the appliance's default detector)")
    ap.add_argument(
        "--detect",
        type=_json_object,
        default={},
        help="more detect settings per camera as JSON, e.g. the old defaults: "
        + """'{"type_model": null, "burst_fps": null}'""",
    )
    ap.add_argument("--concurrency", type=int, default=0, help="runtime.concurrency (0: the appliance's default)")
    ap.add_argument(
        "--threads", type=int, default=1, help="runtime.threads: inference threads per request (1 for many cameras)"
    )
    ap.add_argument("--baseline-max", type=int, default=8, help="also run EDGE_SHARED_MODELS=0 up to this N (0: never)")
    ap.add_argument("--keep-going", action="store_true", help="continue past the first N that is not real time")
    ap.add_argument("--out", help="also write the table (markdown) to this file")
    args = ap.parse_args(argv)

    if not VIDEO.is_file():
        print(f"missing {VIDEO}", file=sys.stderr)
        return 2
    counts = [int(x) for x in args.counts.split(",")] if args.counts else []
    if not counts:
        n = 1
        while n <= args.max:
            counts.append(n)
            n *= 2
        if counts[-1] != args.max:
            counts.append(args.max)
    work = Path(tempfile.mkdtemp(prefix="edge-bench-cameras-"))
    media = work / "cars-long.mp4"
    ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
    subprocess.run(
        [ffmpeg, "-v", "error", "-y", "-stream_loop", "9", "-i", str(VIDEO), "-map", "0:v:0", "-c", "copy", str(media)],
        check=True,
        timeout=120,
    )
    mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = Broker(mosq, work / "mqtt").start()
    server = RtspServer(media, work / "rtsp.log")
    server.start()
    rows: list[Row] = []
    print(f"{os.cpu_count()} cores; load at start {os.getloadavg()[0]:.1f}; work dir {work}", flush=True)
    print(HEADER, flush=True)
    print("|---" * (HEADER.count("|") - 1) + "|", flush=True)
    try:
        for n in counts:
            modes = [True] + ([False] if args.baseline_max and n <= args.baseline_max else [])
            broke = False
            for shared in modes:
                row = run_one(n, shared, server.url(), broker, work, args)
                rows.append(row)
                print(fmt(row, args.fps) + (" " + "; ".join(row.notes) if row.notes else ""), flush=True)
                if shared and not row.realtime(args.fps):
                    broke = True
            if broke and not args.keep_going:
                print(f"breaking point: {n} cameras are not held in real time", flush=True)
                break
    finally:
        server.kill()
        broker.stop()
    shared_rows = {r.n: r for r in rows if r.mode == "shared" and r.rss_edge}
    ns = sorted(shared_rows)
    summary = []
    if len(ns) >= 2:
        lo, hi = shared_rows[ns[-2]], shared_rows[ns[-1]]
        per = (hi.rss_edge - lo.rss_edge) / (hi.n - lo.n)
        per_ff = (hi.pss_ffmpeg - lo.pss_ffmpeg) / (hi.n - lo.n)
        summary.append(
            f"marginal memory per added camera ({lo.n}->{hi.n}): edge RSS {per:.1f} MB, ffmpeg PSS {per_ff:.1f} MB"
        )
    held = [r.n for r in rows if r.mode == "shared" and r.realtime(args.fps)]
    summary.append(f"largest N held in real time: {max(held) if held else 0}")
    for line in summary:
        print(line, flush=True)
    if args.out:
        text = [HEADER, "|---" * (HEADER.count("|") - 1) + "|"] + [fmt(r, args.fps) for r in rows] + [""] + summary
        Path(args.out).write_text("\n".join(text) + "\n")
    if any(r.exit_code not in (0, None) for r in rows):
        print(f"a run exited non-zero: its log is kept in {work}", flush=True)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
