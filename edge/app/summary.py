"""What ``edge run`` tells people: the start-up summary on stderr and the stats topic's JSON."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from edge.app.delivery import rule_engine
from edge.app.models import model_names
from edge.app.seams import camera_status
from edge.config import AppConfig
from edge.events.bus import EventBus
from edge.events.schema import utc_iso
from edge.metrics import Metrics
from edge.redact import redact_text, redact_url

if TYPE_CHECKING:
    from edge.app.worker import CameraWorker

JSON = dict[str, object]


def startup_summary(config: AppConfig, metrics_port: int | None) -> list[str]:
    """What ``edge run`` prints on stderr as it starts: the cameras (credentials masked), the
    models, where events go and where ``/metrics`` is (``metrics_port``: the bound port, None
    when the endpoint is off or could not start)."""
    cams = config.cameras
    lines = [f"edge: device {config.device_id}, {sum(c.enabled for c in cams.values())} of {len(cams)} camera(s)"]
    for name, cam in cams.items():
        lines.append(f"  camera {name}: {redact_text(redact_url(cam.url))}" + ("" if cam.enabled else " (disabled)"))
    names, plates = model_names(config)
    models = names + [f"{p.detector_model} + {p.ocr_model} (plates)" for p in plates]
    lines.append(f"  models: {', '.join(dict.fromkeys(models)) or 'none'}")
    sinks = []
    if config.mqtt is not None:
        m = config.mqtt
        scheme = "mqtts" if m.tls or m.tls_ca or m.tls_cert else "mqtt"
        sinks.append(f"MQTT {scheme}://{m.host}:{m.port} topics {m.topic_prefix}/{config.device_id}/...")
    if config.outputs.jsonl is not None:
        sinks.append(f"JSON lines {config.outputs.jsonl}")
    if config.outputs.stdout:
        sinks.append("stdout")
    lines.append(f"  events: {', '.join(sinks) or 'nowhere (no mqtt, outputs.jsonl or outputs.stdout)'}")
    lines.append(_metrics_line(config, metrics_port))
    return lines


def _metrics_line(config: AppConfig, metrics_port: int | None) -> str:
    mc = config.metrics
    if not mc.enabled:
        return "  metrics: off (metrics.enabled: false)"
    if metrics_port is None:
        return f"  metrics: unavailable on {mc.host}:{mc.port} (see the error above)"
    everywhere = mc.host in ("0.0.0.0", "::", "")  # noqa: S104 - reporting the configured bind address
    host = "localhost" if everywhere else (f"[{mc.host}]" if ":" in mc.host else mc.host)
    where = " (all interfaces)" if everywhere else ""
    return f"  metrics: http://{host}:{metrics_port}/metrics, health /healthz{where}"


def stats_payload(workers: list[CameraWorker], bus: EventBus, metrics: Metrics, started: float) -> JSON:
    """The JSON published on ``<prefix>/<device>/stats``."""
    cams: JSON = {}
    for w in workers:
        st = camera_status(w.reader)
        cams[w.name] = {
            "up": st.up,
            "fps": round(st.fps, 2),
            "frames": st.frames,
            "dropped": st.dropped,
            "reconnects": st.reconnects,
            "errors": w.errors,
        }
    events: dict[str, int] = {}
    for (_cam, typ), n in dict(bus.counts).items():
        events[typ] = events.get(typ, 0) + n
    out: JSON = {
        "ts": utc_iso(time.time()),
        "uptime": round(time.monotonic() - started, 1),
        "cameras": cams,
        "events": events,
    }
    engine = rule_engine(bus)
    if engine is not None:
        counts = engine.open_counts()
        out["open"] = {"visits": counts["visits"], "anomalies": sum(counts["anomalies"].values())}
    if metrics.outbox is not None:
        box = metrics.outbox.stats()
        out["outbox"] = {"depth": box.depth, "oldest_age": round(box.oldest_age(), 1), "dropped": box.dropped}
    return out
