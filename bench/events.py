"""Event delivery benchmark: sustained events/s through the durable outbox to a real local
mosquitto, mean bytes per event, and what a camera-week of events costs next to 258 GB of video.

    python bench/events.py                                   # synthetic track events
    python bench/events.py --events-jsonl events.jsonl       # real events, e.g. from `edge replay`

The events-per-second rate for the projection comes from the JSONL (lines / --clip-seconds,
30 s for shared/data/videos/car-detection.mp4); without one it is an assumption
(--assume-rate, default 1 event/s: a busy taxi rank with a vehicle every few seconds, each
giving start + updates + end).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm import tqdm  # noqa: E402

from edge.config import MqttConfig  # noqa: E402
from edge.events.bus import EventBus  # noqa: E402
from edge.events.mqtt import MqttPublisher  # noqa: E402
from edge.events.outbox import Outbox  # noqa: E402
from edge.events.schema import Event, new_event_id, utc_iso  # noqa: E402
from edge.events.sequence import PersistentSequencer  # noqa: E402
from edge.events.sinks import FanOut, MqttSink  # noqa: E402

WEEK = 7 * 24 * 3600
VIDEO_WEEK_GB = 258.0  # one camera recording a week of taxi-rank video (landscape.md)
MQTT_OVERHEAD = 5  # fixed header + packet id + topic length field, bytes per PUBLISH (QoS 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A throwaway broker on 127.0.0.1."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        sys.exit("mosquitto not found (apt-get install mosquitto)")
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(f"{user}listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("mosquitto did not start")


def load_templates(path: Path | None) -> list[Event]:
    """Events to replay: from a JSONL file, or one synthetic typical track event."""
    if path is not None:
        events = [Event.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]
        if events:
            return events
        print(f"{path} holds no events; using a synthetic one", file=sys.stderr)
    t = time.time()
    return [
        Event(
            device="edge-1",
            camera="cam1",
            type="track",
            phase="update",
            ts=utc_iso(t),
            track=17,
            label="car",
            score=0.87,
            box=[0.1234, 0.2345, 0.3456, 0.4567],
            zones=["entry"],
            start=utc_iso(t - 4),
            attrs={"type": "car", "color": "white"},
        )
    ]


def direct_baseline(port: int, payloads: list[tuple[str, bytes]], qos: int, inflight: int) -> float:
    """Events/s of a bare paho client publishing the same messages with no outbox (the
    baseline: what durability costs is the ratio to it)."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edge-bench-direct")
    client.max_inflight_messages_set(inflight)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        t0 = time.perf_counter()
        infos = [client.publish(topic, body, qos=qos) for topic, body in payloads]
        for info in infos:
            info.wait_for_publish(60)
        return len(payloads) / (time.perf_counter() - t0)
    finally:
        client.loop_stop()
        client.disconnect()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=5000, help="events to push through the outbox")
    ap.add_argument("--events-jsonl", type=Path, help="real events (one JSON per line), e.g. from edge replay")
    ap.add_argument("--clip-seconds", type=float, default=30.0, help="duration the JSONL covers")
    ap.add_argument("--assume-rate", type=float, default=1.0, help="events/s per camera without a JSONL")
    ap.add_argument("--qos", type=int, default=1, choices=(0, 1, 2))
    ap.add_argument("--max-inflight", type=int, default=20)
    args = ap.parse_args(argv)

    templates = load_templates(args.events_jsonl)
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        workdir = Path(tmp)
        broker, port = start_mosquitto(workdir)
        try:
            cfg = MqttConfig(
                host="127.0.0.1", port=port, client_id="edge-bench", qos=args.qos, max_inflight=args.max_inflight
            )
            outbox = Outbox(workdir / "outbox.db", max_bytes=1 << 30)
            pub = MqttPublisher(cfg, "edge-1", outbox)
            bus = EventBus("edge-1", FanOut([MqttSink(pub)]), PersistentSequencer(workdir / "outbox.db"))
            pub.start()
            deadline = time.monotonic() + 10
            while not pub.connected and time.monotonic() < deadline:
                time.sleep(0.05)
            if not pub.connected:
                sys.exit(f"could not connect to the local broker: {pub.last_error}")
            payload_bytes = topic_bytes = 0
            bar = tqdm(total=args.events, unit="ev", desc="acked", file=sys.stderr)
            t0 = time.perf_counter()
            acked_shown = 0
            for i in range(args.events):
                ev = templates[i % len(templates)].model_copy(update={"id": new_event_id()})
                stamped = bus.emit(ev)
                payload_bytes += len(stamped.to_bytes())
                topic_bytes += len(pub.topics.event(stamped.camera, stamped.type))
                if i % 100 == 99:
                    acked = i + 1 - outbox.depth
                    bar.update(acked - acked_shown)
                    acked_shown = acked
            t_put = time.perf_counter() - t0
            while outbox.depth and time.perf_counter() - t0 < 300:
                acked = args.events - outbox.depth
                bar.update(acked - acked_shown)
                acked_shown = acked
                time.sleep(0.02)
            elapsed = time.perf_counter() - t0
            bar.update(args.events - outbox.depth - acked_shown)
            bar.close()
            delivered = args.events - outbox.depth
            bus.close()
            print("baseline: the same events published directly with paho (no outbox)...", file=sys.stderr)
            sample = [
                (pub.topics.event(e.camera, e.type), e.model_copy(update={"id": new_event_id()}).to_bytes())
                for e in (templates[i % len(templates)] for i in range(args.events))
            ]
            direct = direct_baseline(port, sample, args.qos, args.max_inflight)
        finally:
            broker.terminate()
            broker.wait(timeout=10)

    mean_payload = payload_bytes / args.events
    mean_wire = (payload_bytes + topic_bytes) / args.events + MQTT_OVERHEAD
    if args.events_jsonl is not None:
        rate = len(templates) / args.clip_seconds
        rate_src = f"{len(templates)} events in {args.clip_seconds:g} s of {args.events_jsonl.name}"
    else:
        rate = args.assume_rate
        rate_src = "assumed (no --events-jsonl)"
    week_mb = rate * mean_wire * WEEK / 1e6
    result = {
        "events": args.events,
        "delivered": delivered,
        "sustained_events_per_s": round(delivered / elapsed, 1),
        "outbox_write_events_per_s": round(args.events / t_put, 1),
        "direct_publish_events_per_s": round(direct, 1),
        "outbox_to_direct_ratio": round(delivered / elapsed / direct, 2),
        "mean_payload_bytes": round(mean_payload, 1),
        "mean_wire_bytes": round(mean_wire, 1),
        "events_per_s_per_camera": round(rate, 4),
        "rate_source": rate_src,
        "mb_per_camera_week": round(week_mb, 2),
        "video_gb_per_camera_week": VIDEO_WEEK_GB,
        "reduction_factor": round(VIDEO_WEEK_GB * 1000 / week_mb) if week_mb else None,
    }
    print(
        f"sustained: {result['sustained_events_per_s']} events/s through the outbox to mosquitto "
        f"(QoS {args.qos}, {delivered}/{args.events} acknowledged in {elapsed:.1f} s)"
    )
    print(
        f"baseline: {direct:.1f} events/s published directly (no outbox); "
        f"durable outbox runs at {result['outbox_to_direct_ratio']}x of it"
    )
    print(f"size: {mean_payload:.0f} B payload, ~{mean_wire:.0f} B on the wire per event")
    print(f"rate: {rate:.3f} events/s per camera ({rate_src})")
    print(
        f"projection: {week_mb:.1f} MB per camera-week vs {VIDEO_WEEK_GB:g} GB of video "
        f"(~{result['reduction_factor']}x less)"
    )
    print(json.dumps(result))
    return 0 if delivered == args.events else 1


if __name__ == "__main__":
    raise SystemExit(main())
