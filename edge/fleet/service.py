"""``edge fleet --config F``: store, ingest worker and console in one process."""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Any, cast

from edge.errors import EdgeError
from edge.fleet.config import FleetConfig
from edge.fleet.counts import Retention
from edge.fleet.ingest import Ingest
from edge.fleet.metrics import FleetMetrics
from edge.fleet.store import FleetStore

log = logging.getLogger("edge.fleet")


class Fleet:
    """One ``edge fleet`` instance; ``start()`` returns once subscribed and serving."""

    def __init__(self, cfg: FleetConfig) -> None:
        self.cfg = cfg
        self.store = FleetStore(cfg.database, dead_letters_keep=cfg.ingest.dead_letters_keep)
        self.ingest = Ingest(cfg, self.store)
        self.metrics = FleetMetrics(self.ingest)
        self.metrics_server: Any = None
        self.server: Any = None
        self._thread: threading.Thread | None = None
        self.retention: Retention | None = None  # count time-series retention (edge.fleet.counts)

    def send(self, device: str, command: dict[str, Any]) -> None:
        """Publish a console command to ``<prefix>/<device>/cmd/console``."""
        topic = f"{self.cfg.mqtt.topic_prefix}/{device}/cmd/console"
        self.ingest.publish(topic, json.dumps(command, separators=(",", ":")).encode("utf-8"))

    def start(self, serve: bool = True) -> Fleet:
        if self.cfg.metrics.enabled:
            self._serve_metrics()
        self.ingest.start()
        self.retention = Retention(self.store.engine, self.cfg.counts).start()
        if self.cfg.web.enabled and serve:
            import uvicorn

            from edge.fleet.web import create_app

            app = create_app(self.cfg, self.store, self.send, registry=self.metrics.registry)
            config = uvicorn.Config(app, host=self.cfg.web.host, port=self.cfg.web.port, log_level="warning")
            self.server = uvicorn.Server(config)
            self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            self._thread = threading.Thread(target=self.server.run, name="edge-fleet-web", daemon=True)
            self._thread.start()
            while not self.server.started and self._thread.is_alive():
                threading.Event().wait(0.05)
        return self

    def _serve_metrics(self) -> None:
        from edge.metrics import Metrics, MetricsServer

        m = self.cfg.metrics
        try:
            # duck-typed: the server only calls render() (FleetMetrics has the fleet's own registry)
            self.metrics_server = MetricsServer(
                cast(Metrics, self.metrics), m.host, m.port, self.metrics.health
            ).start()
        except OSError as err:
            raise EdgeError(f"metrics: cannot listen on {m.host}:{m.port}: {err.strerror or err}") from None

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            if self._thread is not None:
                self._thread.join(10)
        self.ingest.stop()
        if self.retention is not None:
            self.retention.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        self.store.close()


def run(cfg: FleetConfig) -> int:
    """Run until SIGINT/SIGTERM."""
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_a: done.set())
    fleet = Fleet(cfg).start()
    where = f", console on http://{cfg.web.host}:{cfg.web.port}/" if cfg.web.enabled else ""
    log.warning("edge fleet: schema v%d, broker %s:%d%s", fleet.store.version, cfg.mqtt.host, cfg.mqtt.port, where)
    try:
        done.wait()
    finally:
        fleet.stop()
    return 0
