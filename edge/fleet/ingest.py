"""The MQTT side of ``edge fleet``: subscribe, batch, store, acknowledge.

paho's network thread only queues messages; one writer thread takes up to ``BATCH`` at a time,
stores them in one transaction (events ``ON CONFLICT DO NOTHING``), feeds the fleet rule engine
and only then acknowledges them to the broker (paho ``manual_ack``): a message is PUBACKed once
it is committed, so a crash redelivers it (same event id, stored once).

Subscriptions (``<p>`` = topic prefix, ``$share/<group>/`` in front when ``mqtt.share_group``
is set, so several workers split the load):
``<p>/+/+/events/#`` and ``<p>/+/+/snapshot/+`` (shared); ``<p>/+/status``, ``<p>/+/stats`` and
``<p>/+/cmd/reply`` (every worker); ``<p>/<rules.device_id>/cmd/#`` with rules on.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.events.schema import Event
from edge.fleet.config import FleetConfig
from edge.fleet.store import Batch, FleetStore

log = logging.getLogger("edge.fleet")
BATCH = 500
_STOP = object()


@dataclass
class Msg:
    topic: str
    payload: bytes
    mid: int
    qos: int


class Ingest:
    """One worker: MQTT in, database out (and the fleet rule engine when configured)."""

    def __init__(self, cfg: FleetConfig, store: FleetStore) -> None:
        self.cfg, self.store = cfg, store
        self.prefix = cfg.mqtt.topic_prefix
        self.stored = 0  # new events this worker stored
        self.received = 0
        self.errors = 0
        self.connected = threading.Event()
        self._subscribed = threading.Event()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=20_000)
        self._thread: threading.Thread | None = None
        self.rules: Any = None
        self.handler: Any = None
        m = cfg.mqtt
        self.client_id = m.client_id or f"edge-fleet-{socket.gethostname()}-{os.getpid()}-{id(self) % 10000}"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=m.client_id is None,  # a configured id keeps its session across restarts
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if m.username:
            self.client.username_pw_set(m.username, m.password.get_secret_value() if m.password else None)
        if m.tls_ca:
            self.client.tls_set(ca_certs=str(m.tls_ca))
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        if cfg.rules.enabled:
            self._setup_rules()

    # --- topics ---------------------------------------------------------------------------------

    def topics(self) -> list[str]:
        p, share = self.prefix, self.cfg.mqtt.share_group
        shared = f"$share/{share}/" if share else ""
        subs = [f"{shared}{p}/+/+/events/#", f"{p}/+/status", f"{p}/+/stats", f"{p}/+/cmd/reply"]
        if self.cfg.mqtt.snapshots:
            subs.append(f"{shared}{p}/+/+/snapshot/+")
        if self.handler is not None:
            subs.append(f"{p}/{self.cfg.rules.device_id}/cmd/#")
        return subs

    # --- life cycle -----------------------------------------------------------------------------

    def start(self, wait: float = 10.0) -> Ingest:
        """Connect, subscribe and start the writer; waits up to ``wait`` s for the subscription."""
        self._thread = threading.Thread(target=self._write_loop, name="edge-fleet-writer", daemon=True)
        self._thread.start()
        self.client.connect_async(self.cfg.mqtt.host, self.cfg.mqtt.port, keepalive=30)
        self.client.loop_start()
        if wait and not self._subscribed.wait(wait):
            log.warning("not subscribed after %.0f s (broker %s:%d)", wait, self.cfg.mqtt.host, self.cfg.mqtt.port)
        return self

    def stop(self) -> None:
        """Finish the queued messages, disconnect."""
        self.client.disconnect()
        self.client.loop_stop()
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(30)
        if self.handler is not None:
            self.handler.stop()
        if self.rules is not None:
            self.rules.close()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish (commands to devices, the fleet engine's replies)."""
        self.client.publish(topic, payload, qos=qos)

    def idle(self) -> bool:
        """True when nothing waits to be written."""
        return self._queue.unfinished_tasks == 0

    # --- paho thread ----------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)
            return
        self.connected.set()
        client.subscribe([(t, int(self.cfg.mqtt.qos)) for t in self.topics()])

    def _on_disconnect(self, *_a: Any) -> None:
        self.connected.clear()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        own = f"{self.prefix}/{self.cfg.rules.device_id}/cmd/"
        if self.handler is not None and msg.topic.startswith(own) and msg.topic != own + "reply":
            self.handler.on_message(msg.topic, bytes(msg.payload))
            self.client.ack(msg.mid, msg.qos)
            return
        self._queue.put(Msg(msg.topic, bytes(msg.payload), msg.mid, msg.qos))

    # --- writer thread --------------------------------------------------------------------------

    def _write_loop(self) -> None:
        last_tick = 0.0
        while True:
            got: list[Any] = []
            try:
                got.append(self._queue.get(timeout=1.0))
                while len(got) < BATCH and got[-1] is not _STOP:
                    got.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            msgs = [m for m in got if isinstance(m, Msg)]
            try:
                if msgs:
                    self._handle(msgs)
                now = time.time()
                if self.rules is not None and now - last_tick >= 1.0:
                    last_tick = now
                    self._derived(self.rules.tick(now))
            except Exception:
                self.errors += 1
                log.exception("storing %d message(s) failed", len(msgs))
            finally:
                for _ in got:
                    self._queue.task_done()
            if got and got[-1] is _STOP:
                return

    def _handle(self, msgs: list[Msg]) -> None:
        batch = Batch()
        for m in msgs:
            parts = m.topic.split("/")
            try:
                if len(parts) >= 5 and parts[-2] == "events":
                    e = json.loads(m.payload)
                    if isinstance(e, dict) and isinstance(e.get("id"), str) and e.get("device") and e.get("camera"):
                        batch.events.append(e)
                elif len(parts) >= 5 and parts[-2] == "snapshot":
                    snap = {"event_id": parts[-1][:32], "device": parts[-4], "camera": parts[-3]}
                    batch.snapshots.append({**snap, "jpeg": m.payload, "received": time.time()})
                elif parts[-1] == "status" and len(parts) == 3:
                    self.store.device_status(parts[1], status=m.payload.decode("utf-8", "replace")[:20])
                elif parts[-1] == "stats" and len(parts) == 3:
                    self.store.device_status(parts[1], stats=json.loads(m.payload))
                elif parts[-2:] == ["cmd", "reply"]:
                    self.store.command_reply(json.loads(m.payload))
            except (ValueError, UnicodeDecodeError):
                self.errors += 1
                log.debug("bad payload on %s", m.topic)
        self.received += len(batch.events)
        if self.rules is not None and batch.events:
            batch.derived = [(self.rules.device_id, json.loads(x.to_json())) for x in self.rules.feed(batch.events)]
        if not self.cfg.store_events:
            batch.events = []
        while True:
            try:
                self.stored += len(self.store.write(batch))
                break
            except Exception:  # database down: keep the messages unacknowledged and retry
                self.errors += 1
                log.exception("database write failed; retrying in 2 s")
                time.sleep(2)
        for m in msgs:
            if m.qos:
                self.client.ack(m.mid, m.qos)

    def _derived(self, events: list[Event]) -> None:
        if events:
            self.store.write(Batch(derived=[(self.cfg.rules.device_id, json.loads(e.to_json())) for e in events]))

    # --- the fleet engine and its commands ------------------------------------------------------

    def _setup_rules(self) -> None:
        from edge.commands import CommandHandler
        from edge.config import CommandsConfig
        from edge.events.topics import Topics
        from edge.feedback.store import FeedbackStore
        from edge.fleet.rules import FleetEngine

        self.rules = FleetEngine(self.cfg.rules, self._derived)
        state = self.cfg.rules.state
        folder = state.parent if state is not None else Path(tempfile.mkdtemp(prefix="edge-fleet-"))
        cmds = CommandsConfig(secret=self.cfg.commands.secret)
        self.handler = CommandHandler(
            cmds,
            Topics(self.prefix, self.cfg.rules.device_id),
            lambda t, p: self.publish(t, p),
            FeedbackStore(folder / "fleet-feedback.sqlite3"),
            engine=self.rules.engine,
            bus=self.rules,
        ).start()
