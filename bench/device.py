"""Resource budget per device profile: resident memory per camera and start-up time to the first frame.

For each profile (deploy/profiles/*.yaml) and camera count, runs a real ``edge run`` process
whose cameras are N copies of the profile's first camera reading the demo clip (looped, real
time) - or, with ``--rtsp``, an RTSP stream of it served by tests/tools/rtsp_server.py, so each
camera also has its ffmpeg decoder process. It polls ``/metrics`` and reports:

- ``first frame``: seconds from process start until every camera has read a frame;
- ``first inference``: until every camera's pipeline has run the detector once (includes
  importing the runtimes and loading the models);
- ``RSS``: resident memory of edge plus its ffmpeg children, the peak over ``--seconds`` of
  steady running; ``per camera`` is the slope between the smallest and largest camera count.

Usage: python bench/device.py [PROFILE.yaml ...] [--cameras 1,3] [--seconds 15] [--rtsp]
Numbers are for the machine it runs on (see docs/devices.md for which were measured where).
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGE_SHARED", REPO.parent / "shared"))
CLIP = SHARED / "data" / "videos" / "car-detection.mp4"


def sys_python() -> str:
    """The interpreter with GStreamer's Python bindings (the RTSP test server needs them)."""
    return os.environ.get("EDGE_GST_PYTHON", "/usr/bin/python3")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants, KiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, AttributeError):
            continue
    return total


def scrape(port: int) -> dict[str, dict[str, float]]:
    """{metric: {camera: value}} for the per-camera counters we need."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    out: dict[str, dict[str, float]] = {}
    for m in re.finditer(r'^(edge_\w+_total)\{camera="([^"]+)"\} (\S+)$', text, re.M):
        out.setdefault(m.group(1), {})[m.group(2)] = float(m.group(3))
    return out


def config_for(profile: Path, n: int, url: str, port: int, tmp: Path) -> Path:
    data: dict[str, Any] = yaml.safe_load(profile.read_text())
    cam = next(iter(data["cameras"].values()))
    cams = {}
    for i in range(n):
        c = copy.deepcopy(cam)
        c["url"] = url
        if "://" not in url:
            c.update(loop=True, realtime=True)
        cams[f"cam{i}"] = c
    data["cameras"] = cams
    data.pop("models", None)  # the bench uses $EDGE_MODEL_CACHE / $EDGE_MODEL_MIRROR
    data["metrics"] = {"enabled": True, "host": "127.0.0.1", "port": port}
    data["outbox"] = {"path": str(tmp / "outbox.sqlite3")}
    data["outputs"] = {"jsonl": str(tmp / "events.jsonl")}
    path = tmp / f"{profile.stem}-{n}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def measure(profile: Path, n: int, url: str, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="edge-bench-device-") as d:
        port = free_port()
        cfg = config_for(profile, n, url, port, Path(d))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge", "run", "--config", str(cfg)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(d) / "edge.log", "w"),  # noqa: SIM115
        )
        first_frame = first_infer = float("nan")
        try:
            deadline = t0 + 300
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    m = scrape(port)
                except OSError:
                    time.sleep(0.05)
                    continue
                now = time.monotonic() - t0
                read = m.get("edge_camera_frames_read_total", {})
                inferred = m.get("edge_pipeline_frames_inferred_total", {})
                if first_frame != first_frame and len(read) == n and all(v > 0 for v in read.values()):
                    first_frame = now
                if len(inferred) == n and all(v > 0 for v in inferred.values()):
                    first_infer = now
                    break
                time.sleep(0.05)
            if proc.poll() is not None:
                raise RuntimeError(f"edge exited: {(Path(d) / 'edge.log').read_text()[-1500:]}")
            peak = 0
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                peak = max(peak, rss_kib(proc.pid))
                time.sleep(0.5)
            inferred_total = sum(scrape(port).get("edge_pipeline_frames_inferred_total", {}).values())
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {"first_frame": first_frame, "first_infer": first_infer, "rss_mib": peak / 1024, "inferred": inferred_total}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profiles", nargs="*", type=Path)
    ap.add_argument("--cameras", default="1,3", help="camera counts, e.g. 1,3")
    ap.add_argument("--seconds", type=float, default=15.0, help="steady running per measurement")
    ap.add_argument("--rtsp", action="store_true", help="serve the clip over RTSP (ffmpeg decoder per camera)")
    args = ap.parse_args()
    profiles = args.profiles or sorted((REPO / "deploy" / "profiles").glob("*.yaml"))
    counts = [int(x) for x in args.cameras.split(",")]
    server = None
    url = str(CLIP)
    if args.rtsp:
        port = free_port()
        server = subprocess.Popen(
            [sys_python(), str(REPO / "tests" / "tools" / "rtsp_server.py"), "--file", str(CLIP), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"rtsp://127.0.0.1:{port}/cars"
        time.sleep(3)
    print(f"source: {'RTSP ' if args.rtsp else 'file '}{url}; {os.cpu_count()} CPUs; {args.seconds:g} s steady per run")
    head = f"{'profile':14} {'cams':>4} {'first frame s':>13} {'first infer s':>13} {'RSS MiB':>8}"
    print(f"{head} {'per camera MiB':>14}")
    try:
        for profile in profiles:
            rows = [(n, measure(profile, n, url, args.seconds)) for n in counts]
            (n0, r0), (n1, r1) = rows[0], rows[-1]
            slope = (r1["rss_mib"] - r0["rss_mib"]) / (n1 - n0) if n1 != n0 else float("nan")
            for n, r in rows:
                per = f"{slope:14.0f}" if n == n1 and n1 != n0 else ""
                print(
                    f"{profile.stem:14} {n:>4} {r['first_frame']:>13.1f} {r['first_infer']:>13.1f} "
                    f"{r['rss_mib']:>8.0f} {per}",
                    flush=True,
                )
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
