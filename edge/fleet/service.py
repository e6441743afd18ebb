"""``edge fleet --config F``: store, ingest worker and console in one process."""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Any

from edge.fleet.config import FleetConfig
from edge.fleet.ingest import Ingest
from edge.fleet.store import FleetStore

log = logging.getLogger("edge.fleet")


class Fleet:
    """One ``edge fleet`` instance; ``start()`` returns once subscribed and serving."""

    def __init__(self, cfg: FleetConfig) -> None:
        self.cfg = cfg
        self.store = FleetStore(cfg.database)
        self.ingest = Ingest(cfg, self.store)
        self.server: Any = None
        self._thread: threading.Thread | None = None

    def send(self, device: str, command: dict[str, Any]) -> None:
        """Publish a console command to ``<prefix>/<device>/cmd/console``."""
        topic = f"{self.cfg.mqtt.topic_prefix}/{device}/cmd/console"
        self.ingest.publish(topic, json.dumps(command, separators=(",", ":")).encode("utf-8"))

    def start(self, serve: bool = True) -> Fleet:
        self.ingest.start()
        if self.cfg.web.enabled and serve:
            import uvicorn

            from edge.fleet.web import create_app

            app = create_app(self.cfg, self.store, self.send)
            config = uvicorn.Config(app, host=self.cfg.web.host, port=self.cfg.web.port, log_level="warning")
            self.server = uvicorn.Server(config)
            self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            self._thread = threading.Thread(target=self.server.run, name="edge-fleet-web", daemon=True)
            self._thread.start()
            while not self.server.started and self._thread.is_alive():
                threading.Event().wait(0.05)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            if self._thread is not None:
                self._thread.join(10)
        self.ingest.stop()
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
