"""MQTT publisher: drains the durable outbox to the broker with paho-mqtt 2.

Delivery contract (at-least-once, ordered):
- a message leaves the outbox only when the broker acknowledged it (``on_publish`` for QoS >= 1);
- at most ``max_inflight`` messages are unacknowledged at a time (memory stays bounded, the
  backlog stays on disk);
- after a reconnect, paho re-sends the unacknowledged messages first (same payload, DUP flag)
  and no newer message is sent until they are acknowledged, so order is kept;
- after a process restart the outbox is sent again from its oldest row; consumers deduplicate
  on the event ``id``.

Threads: paho's network thread (``loop_start``) and one pump thread that owns all outbox
reads/acks. ``on_publish`` runs while paho holds its own lock, so it only queues the message
id for the pump (taking any other lock there could deadlock against ``publish``).
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge.config import MqttConfig
from edge.errors import ConfigError
from edge.events.outbox import Outbox
from edge.events.topics import OFFLINE, ONLINE, Topics

log = logging.getLogger("edge.events.mqtt")

_LOG_REPEAT = 60.0  # seconds before the same connection error is logged again


class MqttPublisher:
    """Publishes outbox messages plus status/stats/discovery messages for one device."""

    def __init__(
        self,
        cfg: MqttConfig,
        device: str,
        outbox: Outbox,
        *,
        on_latency: Callable[[float], None] | None = None,
        retained: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """``retained``: extra (topic, payload) pairs published retained on every connect
        (Home Assistant discovery)."""
        self.cfg = cfg
        self.topics = Topics(cfg.topic_prefix, device)
        self.outbox = outbox
        self.on_latency = on_latency
        self._retained = list(retained)
        self.client_id = cfg.client_id or f"edge-{device}"
        self.connected = False
        self.connects = 0
        self.last_error: str | None = None
        self._stopping = False
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._reconnected = False
        self._inflight: dict[int, tuple[int, float]] = {}  # mid -> (outbox id, sent at); pump only
        self._pump_thread: threading.Thread | None = None
        self._last_err_key: str | None = None
        self._last_err_time = 0.0
        self._subscriptions: list[tuple[str, int]] = []  # (filter, qos), renewed on every connect
        self.client = self._make_client()

    # -- setup ---------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        cfg = self.cfg
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,  # persistent session: the broker keeps our state across reconnects
            protocol=mqtt.MQTTv311,
        )
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password.get_secret_value() if cfg.password else None)
        if cfg.tls or cfg.tls_ca or cfg.tls_cert:
            for name in ("tls_ca", "tls_cert", "tls_key"):
                p = getattr(cfg, name)
                if p is not None and not p.is_file():
                    raise ConfigError(f"mqtt.{name}: file not found: {p}")
            try:
                client.tls_set(
                    ca_certs=str(cfg.tls_ca) if cfg.tls_ca else None,
                    certfile=str(cfg.tls_cert) if cfg.tls_cert else None,
                    keyfile=str(cfg.tls_key) if cfg.tls_key else None,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (ssl.SSLError, OSError) as err:
                raise ConfigError(f"mqtt TLS files cannot be loaded: {err}") from None
            if cfg.tls_insecure:
                client.tls_insecure_set(True)
        client.will_set(self.topics.status, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(
            min_delay=max(1, int(cfg.reconnect_min_delay)), max_delay=int(cfg.reconnect_max_delay)
        )
        client.max_inflight_messages_set(cfg.max_inflight + 10)  # headroom for status/stats messages
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def start(self) -> None:
        """Connect in the background (retrying with backoff) and start draining the outbox."""
        self._stopping = False
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        self.client.loop_start()
        self._pump_thread = threading.Thread(target=self._pump, name="edge-mqtt-pump", daemon=True)
        self._pump_thread.start()
        log.info(
            "MQTT publishing to %s:%d as %s (tls=%s, auth=%s, qos=%d)",
            self.cfg.host,
            self.cfg.port,
            self.client_id,
            bool(self.cfg.tls or self.cfg.tls_ca or self.cfg.tls_cert),
            self.cfg.username is not None,
            self.cfg.qos,
        )

    # -- paho callbacks (network thread) -------------------------------------------------------

    def _log_error(self, key: str, msg: str, *args: Any) -> None:
        """Log a connection problem once per minute per kind (a dead broker would flood the log)."""
        now = time.monotonic()
        if key != self._last_err_key or now - self._last_err_time >= _LOG_REPEAT:
            log.error(msg, *args)
            self._last_err_key, self._last_err_time = key, now

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            hint = ""
            if str(reason) in {"Not authorized", "Bad user name or password"}:
                hint = " (check mqtt.username / mqtt.password)"
            self.last_error = f"refused: {reason}"
            self._log_error(
                f"refused:{reason}",
                "MQTT broker %s:%d refused the connection: %s%s; retrying",
                self.cfg.host,
                self.cfg.port,
                reason,
                hint,
            )
            return
        self.connects += 1
        self.last_error = None
        self._last_err_key = None
        log.info(
            "MQTT connected to %s:%d (session present: %s)",
            self.cfg.host,
            self.cfg.port,
            flags.session_present,
        )
        client.publish(self.topics.status, ONLINE, qos=1, retain=True)
        for topic, payload in self._retained:
            client.publish(topic, payload, qos=1, retain=True)
        for topic_filter, qos in self._subscriptions:
            client.subscribe(topic_filter, qos=qos)
        self._reconnected = True
        self.connected = True
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.last_error = "connection failed"
        self._log_error(
            "connect_fail",
            "MQTT broker %s:%d unreachable; retrying with backoff",
            self.cfg.host,
            self.cfg.port,
        )

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        was = self.connected
        self.connected = False
        if was and not self._stopping:
            log.warning(
                "MQTT disconnected from %s:%d (%s); events wait in the outbox",
                self.cfg.host,
                self.cfg.port,
                reason,
            )

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._acks.put(mid)  # no locks here: paho holds its message lock while calling us
        self._wake.set()

    # -- pump thread ---------------------------------------------------------------------------

    def _pump(self) -> None:
        cursor = 0  # highest outbox id handed to paho in this process
        resuming = False
        while True:
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._take_acks()
                # Read ``connected`` before ``_reconnected``: on_connect sets them in the other
                # order, so a fresh connection is never used before its resends are accounted.
                connected = self.connected
                if self._reconnected:
                    self._reconnected = False
                    resuming = bool(self._inflight)
                if resuming and not self._inflight:
                    resuming = False
                if self._stopping and not self.connected:
                    break
                if connected and not resuming:
                    cursor = self._send_more(cursor)
            except Exception:  # never let the pump die: the backlog is safe on disk
                log.exception("MQTT pump error; retrying")
                time.sleep(1.0)
            if self._stopping and self.outbox.depth == 0 and not self._inflight:
                break

    def _take_acks(self) -> None:
        done: list[int] = []
        now = time.monotonic()
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                break
            entry = self._inflight.pop(mid, None)
            if entry is None:
                continue  # status/stats/discovery message
            done.append(entry[0])
            if self.on_latency is not None:
                self.on_latency(now - entry[1])
        if done:
            self.outbox.ack(done)

    def _send_more(self, cursor: int) -> int:
        room = self.cfg.max_inflight - len(self._inflight)
        if room <= 0:
            return cursor
        rows = self.outbox.fetch_after(cursor, room)
        for row in rows:
            info = self.client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.warning("MQTT publish not accepted (%s); will retry", mqtt.error_string(info.rc))
                break
            # NO_CONN: paho keeps QoS>0 messages and sends them after the reconnect, in order.
            self._inflight[info.mid] = (row.id, time.monotonic())
            cursor = row.id
        if len(rows) == room:
            self._wake.set()  # probably more waiting
        return cursor

    # -- public --------------------------------------------------------------------------------

    def wake(self) -> None:
        """Tell the pump that the outbox has new messages."""
        self._wake.set()

    @property
    def inflight(self) -> int:
        """Messages handed to the broker and not yet acknowledged."""
        return len(self._inflight)

    def publish_direct(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> bool:
        """Best-effort publish that bypasses the outbox (stats, snapshots); False if offline."""
        if not self.connected:
            return False
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def subscribe(self, topic_filter: str, callback: Callable[[str, bytes], None], qos: int = 1) -> None:
        """Call ``callback(topic, payload)`` for messages matching ``topic_filter`` (subscribed again
        on every connect). It runs on paho's network thread: keep it short; what it raises is logged."""

        def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
            try:
                callback(msg.topic, bytes(msg.payload))
            except Exception:  # an exception here would kill paho's network loop
                log.exception("MQTT message handler for %s failed", topic_filter)

        self.client.message_callback_add(topic_filter, on_message)
        self._subscriptions.append((topic_filter, qos))
        if self.connected:
            self.client.subscribe(topic_filter, qos=qos)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the outbox is empty and nothing is in flight; True if it got there."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.outbox.depth == 0 and not self._inflight:
                return True
            self._wake.set()
            time.sleep(0.02)
        return self.outbox.depth == 0 and not self._inflight

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Send what can be sent within ``drain_timeout``, mark the device offline, disconnect.

        Whatever is left stays in the outbox for the next start.
        """
        if self.connected and drain_timeout > 0:
            if not self.wait_idle(drain_timeout):
                log.info("MQTT stop: %d message(s) stay in the outbox for the next start", self.outbox.depth)
        self._stopping = True
        if self.connected:
            # A clean disconnect suppresses the last will, so say "offline" ourselves.
            info = self.client.publish(self.topics.status, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        self.connected = False
        self._wake.set()
        if self._pump_thread is not None:
            self._pump_thread.join(timeout=5.0)
        self._take_acks()
