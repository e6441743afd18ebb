"""The MQTT side of ``edge fleet``: subscribe, check, batch, store, acknowledge.

paho's network thread only queues messages; one writer thread takes up to ``BATCH`` at a time,
checks each at the door (:mod:`edge.fleet.validate`), stores the batch in one transaction (events
``ON CONFLICT DO NOTHING``), feeds the fleet rule engine and only then acknowledges the messages
to the broker (paho ``manual_ack``): a message is PUBACKed once it is committed, so a crash
redelivers it (same event id, stored once).

No message can hold the others hostage: one the door refuses goes to the ``dead_letters`` table
and is counted (``edge_fleet_rejected_total{reason}``) and acknowledged; when a batch fails to
write, its messages are written one by one, a row the database refuses is retried
``ingest.write_retries`` times and then dead-lettered (``write_failed``). Only a database that
does not answer at all keeps messages unacknowledged (retried with back-off until it answers or
the process stops).

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
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from edge.events.schema import Event
from edge.fleet.config import FleetConfig
from edge.fleet.metrics import IngestStats
from edge.fleet.store import Batch, FleetStore, derived_row
from edge.fleet.validate import INTERNAL, WRITE_FAILED, Rejected, admit, check_row, dead_letter, printable

log = logging.getLogger("edge.fleet")
BATCH = 500
QUEUE_MAX = 20_000
DRAIN_S = 5.0  # on stop: at most this long to store what was received (the rest is redelivered)
RETRY_BASE_S = 0.1  # first wait before a single-row write is retried (doubles each time)
OUTAGE_MAX_S = 30.0  # longest wait between tries while the database does not answer
LOG_EVERY_S = 60.0  # a repeated rejection reason is logged at most this often
RULES_TOPIC = "(fleet rules)"  # dead letters of events the fleet engine derived
_STOP = object()


@dataclass
class Msg:
    topic: str
    payload: bytes
    mid: int
    qos: int


@dataclass
class Derived:
    """Events the fleet engine derived outside the writer (operator ack/resolve)."""

    events: list[Event]


@dataclass
class Item:
    """One message's writes (or one derived event's) and, once decided, whether it was refused."""

    msg: Msg | None  # None: derived by the fleet engine
    kind: str  # event, snapshot, status, stats, reply, derived
    batch: Batch
    reason: str | None = None  # dead-lettered with this reason
    done: bool = False  # committed
    new: int = 0  # events new to the database


class DatabaseDown(Exception):
    """The database does not answer: keep the messages unacknowledged and try again later."""


class Stopping(Exception):
    """The worker is stopping: abandon the batch (unacknowledged messages are redelivered)."""


class Ingest:
    """One worker: MQTT in, database out (and the fleet rule engine when configured)."""

    def __init__(self, cfg: FleetConfig, store: FleetStore) -> None:
        self.cfg, self.store = cfg, store
        self.prefix = cfg.mqtt.topic_prefix
        self.stats = IngestStats()
        self.received = 0  # event messages that passed the door
        self.connected = threading.Event()
        self._subscribed = threading.Event()
        self._stopping = threading.Event()
        self._drain_until = float("inf")
        self._logged: dict[str, tuple[float, int]] = {}  # reason -> (last logged, refused since)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_MAX)
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

    @property
    def stored(self) -> int:
        """Events this worker stored that were new to the database."""
        return self.stats.stored

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
        """Disconnect, store what was received within ``DRAIN_S`` (no waiting for a database that
        does not answer: those messages were not acknowledged and come again), stop."""
        self._drain_until = time.monotonic() + DRAIN_S
        self._stopping.set()
        self.client.disconnect()
        self.client.loop_stop()
        if self._thread is not None:
            try:
                self._queue.put(_STOP, timeout=DRAIN_S)
            except queue.Full:
                pass  # the writer gives up at the drain deadline
            self._thread.join(DRAIN_S + 5)
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

    def queue_depth(self) -> int:
        """Messages received and not yet written."""
        return self._queue.qsize()

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
            try:
                self.handler.on_message(msg.topic, bytes(msg.payload))
            except Exception:  # never let a command kill paho's network thread
                log.exception("fleet command on %s failed", printable(msg.topic, 200))
            self.client.ack(msg.mid, msg.qos)
            return
        self._put(Msg(msg.topic, bytes(msg.payload), msg.mid, msg.qos))

    def _put(self, item: Any) -> None:
        """Queue for the writer; blocks while the queue is full (back-pressure on the broker),
        but not past a stop (the message stays unacknowledged and comes again)."""
        while True:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._stopping.is_set():
                    return

    # --- writer thread --------------------------------------------------------------------------

    def _take(self) -> list[Any]:
        got: list[Any] = []
        try:
            got.append(self._queue.get(timeout=1.0))
            while len(got) < BATCH and got[-1] is not _STOP:
                got.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return got

    def _write_loop(self) -> None:
        last_tick = 0.0
        while True:
            got = self._take()
            try:
                items = self._admit([m for m in got if m is not _STOP])
                now = time.time()
                if self.rules is not None and now - last_tick >= 1.0:
                    last_tick = now
                    items += self._rules_tick(now)
                if items:
                    self._store(items)
            except Stopping:
                return
            except Exception:  # a bug: the messages stay unacknowledged; say so loudly
                log.exception("ingest failed on %d message(s)", len(got))
            finally:
                for _ in got:
                    self._queue.task_done()
            if (got and got[-1] is _STOP) or (self._stopping.is_set() and time.monotonic() > self._drain_until):
                return

    def _admit(self, msgs: list[Msg | Derived]) -> list[Item]:
        """Check each message at the door; feed accepted events to the fleet rule engine."""
        items: list[Item] = []
        for m in msgs:
            if isinstance(m, Derived):
                items += self._derived_items(m.events)
                continue
            try:
                kind, batch = admit(self.prefix, m.topic, m.payload)
                items.append(Item(m, kind, batch))
            except Rejected as r:
                items.append(self._reject(Item(m, "rejected", Batch()), r.reason, r.detail))
            except Exception:
                log.exception("checking a message on %s failed", printable(m.topic, 200))
                items.append(self._reject(Item(m, "rejected", Batch()), INTERNAL, "ingest failed on this message"))
        accepted = [i.batch.events[0] for i in items if i.kind == "event"]
        self.received += len(accepted)
        if self.rules is not None:
            for e in accepted:  # one at a time: an event the engine fails on costs only itself
                try:
                    derived = self.rules.feed([e])
                except Exception:
                    self.stats.rule_errors += 1
                    log.exception("the fleet rule engine failed on event %s", e["id"])
                    continue
                items += self._derived_items(derived)
        if not self.cfg.store_events:  # count events still feed the counts tables
            for i in items:
                i.batch.events = [e for e in i.batch.events if e.get("type") == "count"]
        return items

    def _derived_items(self, events: list[Event]) -> list[Item]:
        """One item per event the fleet engine derived, its row checked like a device's (its
        text comes from devices: a row that cannot be stored is dead-lettered, not retried)."""
        origin, items = self.cfg.rules.device_id, []
        for e in events:
            d = json.loads(e.to_json())
            item = Item(None, "derived", Batch(derived=[(origin, d)]))
            found = derived_row(origin, d)
            try:
                if found is not None:
                    check_row(*found)
            except Rejected as r:
                self._reject(item, r.reason, r.detail)
            items.append(item)
        return items

    def _rules_tick(self, now: float) -> list[Item]:
        try:
            derived = self.rules.tick(now)
        except Exception:
            self.stats.rule_errors += 1
            log.exception("the fleet rule engine's tick failed")
            return []
        return self._derived_items(derived)

    def _reject(self, item: Item, reason: str, detail: str) -> Item:
        """Make ``item`` a dead letter: its writes become one ``dead_letters`` row."""
        if item.msg is not None:
            topic, payload = item.msg.topic, item.msg.payload
        else:
            topic = RULES_TOPIC
            payload = json.dumps([e for _o, e in item.batch.derived], separators=(",", ":")).encode()
        item.reason = reason
        item.batch = Batch(dead=[dead_letter(topic, payload, reason, detail, time.time())])
        last, since = self._logged.get(reason, (0.0, 0))
        now = time.monotonic()
        if now - last >= LOG_EVERY_S:
            more = f" (and {since} more since the last report)" if since else ""
            log.warning(
                "refused a message on %s: %s: %s%s", printable(topic, 200), reason, printable(detail, 300), more
            )
            self._logged[reason] = (now, 0)
        else:
            self._logged[reason] = (last, since + 1)
        return item

    def _store(self, items: list[Item]) -> None:
        """Write every item (or its dead letter), then count and acknowledge. While the database
        does not answer, wait and try again (messages unacknowledged); raises Stopping on stop."""
        delay = 1.0
        while True:
            try:
                self._write(items)
                break
            except DatabaseDown as err:
                self.stats.database_up = False
                log.warning(
                    "database unavailable (%s); %d message(s) wait unacknowledged, next try in %.0f s",
                    err, sum(1 for i in items if i.msg is not None), delay,
                )  # fmt: skip
                if self._stopping.wait(delay):
                    raise Stopping from None
                delay = min(2 * delay, OUTAGE_MAX_S)
        self.stats.database_up = True
        for i in items:
            if i.reason is not None:
                self.stats.rejected[i.reason] += 1
            elif i.msg is not None:
                self.stats.accepted[i.kind] += 1
            self.stats.stored += i.new
            if i.msg is not None and i.msg.qos:
                self.client.ack(i.msg.mid, i.msg.qos)

    def _write(self, items: list[Item]) -> None:
        """All pending items in one transaction; if that fails, each on its own."""
        pending = [i for i in items if not i.done]
        merged = Batch()
        for i in pending:
            merged.extend(i.batch)
        try:
            new = set(self.store.write(merged))
        except Exception as err:
            if not self.store.ping():
                raise DatabaseDown(_short_error(err)) from None
            log.debug("a batch of %d failed (%s); writing its messages one by one", len(pending), _short_error(err))
        else:
            for i in pending:  # a redelivered copy in the same batch is not new: each id counts once
                i.done, i.new = True, sum(1 for e in i.batch.events if e["id"] in new)
                new.difference_update(e["id"] for e in i.batch.events)
            return
        for i in pending:
            self._write_one(i)

    def _write_one(self, item: Item) -> None:
        """Write one item, retrying ``ingest.write_retries`` times; a row the (answering)
        database still refuses becomes a dead letter."""
        retries = self.cfg.ingest.write_retries
        for attempt in range(retries + 1):
            try:
                item.new, item.done = len(self.store.write(item.batch)), True
                return
            except Exception as err:
                error = err
            if attempt < retries:
                self.stats.write_retries += 1
                if self._stopping.wait(RETRY_BASE_S * 2**attempt):
                    raise Stopping
        # a dead letter is made to fit any database that works: if it cannot be written, or the
        # database does not answer, the database is the problem (the message stays unacknowledged)
        if item.reason is not None or not self.store.ping():
            raise DatabaseDown(_short_error(error))
        self._reject(item, WRITE_FAILED, _short_error(error))
        self._write_one(item)

    def _derived(self, events: list[Event]) -> None:
        """The fleet engine's sink outside the writer (operator ack/resolve): written by the writer."""
        if events:
            self._put(Derived(events))

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


def _short_error(err: BaseException) -> str:
    """The driver's first line (SQLAlchemy's own text adds the SQL and its parameters: device data)."""
    orig = err.orig if isinstance(err, sa.exc.DBAPIError) else err
    lines = str(orig).strip().splitlines()
    return printable(f"{type(orig).__name__}: {lines[0] if lines else ''}", 200)
