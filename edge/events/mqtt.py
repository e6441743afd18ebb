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

Reconnecting: failed attempts back off from ``reconnect_min_delay`` to ``reconnect_max_delay``,
but while the broker does not even answer TCP (stopped, rebooting) a cheap TCP probe runs about
once a second and the next attempt starts as soon as it succeeds: after an outage the publisher
is back within ~1-2 s instead of up to ``reconnect_max_delay``. A broker that answers and refuses
(password, TLS) is retried on the backoff schedule only. Each failure is logged once a minute
with its cause (TLS verify message, refused port, closed before CONNACK).
"""

from __future__ import annotations

import errno
import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge.config import MqttConfig
from edge.errors import ConfigError
from edge.events.mqtt_limit import LimitedClient, OnOversized
from edge.events.outbox import Outbox
from edge.events.topics import OFFLINE, ONLINE, Topics

log = logging.getLogger("edge.events.mqtt")

_LOG_REPEAT = 60.0  # seconds before the same connection error is logged again
_PROBE_TIMEOUT = 1.0  # seconds for the TCP probe while the broker is unreachable
# Handshake failures that mean "this port does not speak TLS" (a plain MQTT listener).
_NOT_TLS_REASONS = {"WRONG_VERSION_NUMBER", "UNEXPECTED_EOF_WHILE_READING", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"}
_UNREACHABLE_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.EHOSTDOWN}


_PLAIN_PORT_HINT = "the port does not speak TLS: use the broker's TLS port (often 8883) or drop mqtt.tls*"
_RESET_HINT = "a TLS port? see the broker log"
# Incoming packets above this are discarded unread (edge.events.mqtt_limit): the largest command
# the config allows (update.max_bytes <= 4 MiB) plus room for the topic and headers.
MAX_PACKET_DEFAULT = 4 * 1024 * 1024 + 64 * 1024


class _NotYet(OSError):
    """Raised into paho's reconnect loop while the backoff says "not yet" (not a failure)."""


class _Client(LimitedClient):
    """paho's client (never buffering a packet above its ``max_packet``) plus what its reconnect
    loop lacks, through the public ``reconnect()`` that loop calls (paho itself keeps retrying
    every second, see ``reconnect_delay_set``):

    - ``edge_may_connect`` decides whether this tick really connects (the publisher's backoff
      and TCP probe); otherwise :class:`_NotYet` is raised, which paho treats as a failed try;
    - ``edge_error`` keeps the exception of the last failed attempt (paho passes none to
      ``on_connect_fail``), so the log can name the cause.
    """

    def __init__(self, *args: Any, may_connect: Callable[[], bool], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.edge_may_connect = may_connect
        self.edge_error: OSError | None = None

    def reconnect(self) -> MQTTErrorCode:
        """Connect now if the backoff allows it; remember why it failed."""
        self.edge_error = None
        if not self.edge_may_connect():
            raise _NotYet("reconnect backoff")
        try:
            return super().reconnect()
        except OSError as err:
            self.edge_error = err
            raise


def explain_connect_error(err: BaseException, tls: bool) -> tuple[str, str, bool]:
    """(rate-limit key, cause for the log, broker answered TCP) for a failed connection attempt.

    The cause names what to check; it holds no configuration values other than host/port
    (never credentials)."""
    if isinstance(err, ssl.SSLCertVerificationError):
        msg = str(err.verify_message or err.reason or err)
        if "mismatch" in msg.lower():
            hint = "mqtt.host must be a name or IP listed in the broker certificate"
        else:
            hint = "check mqtt.tls_ca: it must hold the CA that signed the broker certificate"
        return f"tls-verify:{msg}", f"TLS: broker certificate rejected: {msg} ({hint})", True
    if isinstance(err, ssl.SSLError):
        reason = str(err.reason or "")
        detail = reason or str(err)
        if reason in _NOT_TLS_REASONS or isinstance(err, ssl.SSLEOFError):
            hint = _PLAIN_PORT_HINT
        elif "ALERT" in reason:
            hint = "the broker rejected the TLS handshake: check mqtt.tls_cert / mqtt.tls_key and the broker log"
        else:
            hint = "see the broker log"
        return f"tls:{detail}", f"TLS handshake failed: {detail} ({hint})", True
    if tls and isinstance(err, (ConnectionResetError, BrokenPipeError)):
        return "tls:reset", f"TLS handshake failed: connection reset by the broker ({_RESET_HINT})", True
    if isinstance(err, ConnectionRefusedError):
        return "refused-port", "connection refused (broker not running, or wrong mqtt.port)", False
    if isinstance(err, socket.gaierror):
        return "dns", f"cannot resolve mqtt.host: {err.strerror or err}", False
    if isinstance(err, TimeoutError) or getattr(err, "errno", None) in _UNREACHABLE_ERRNOS:
        return "unreachable", f"unreachable: {getattr(err, 'strerror', None) or err or 'timed out'}", False
    return f"os:{type(err).__name__}", f"connection failed: {err or type(err).__name__}", False


def speaks_tls(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if ``host:port`` answers a TLS handshake (certificates not checked: a diagnosis only)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=host):
                return True
    except ssl.SSLError as err:  # an alert (e.g. "certificate required") is still TLS talking
        return "ALERT" in str(err.reason or "")
    except OSError:
        return False


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
        max_packet_size: int = MAX_PACKET_DEFAULT,
    ) -> None:
        """``retained``: extra (topic, payload) pairs published retained on every connect
        (Home Assistant discovery). Incoming messages above ``max_packet_size`` bytes are
        discarded as they arrive (see :meth:`subscribe`)."""
        self.max_packet_size = max_packet_size
        self._oversized: list[tuple[str, OnOversized]] = []  # (filter, callback)
        self.cfg = cfg
        self.topics = Topics(cfg.topic_prefix, device)
        self.outbox = outbox
        self.on_latency = on_latency
        self._retained = list(retained)
        self.online_payload, self.offline_payload = ONLINE, OFFLINE  # see set_status
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
        # Reconnect backoff (paho's network thread only).
        self._delay = float(cfg.reconnect_min_delay)
        self._next_try = 0.0  # monotonic time of the next real attempt
        self._unreachable = False  # the last attempt found no broker on TCP: probe for it
        self._attempt_failed = False  # this attempt's failure was already counted and logged
        self._closed_hint = ""  # diagnosis of "closed before CONNACK" (speaks_tls probe)
        self._plain_port = False  # diagnosis of a reset TLS handshake (speaks_tls probe)
        self.client = self._make_client()

    # -- setup ---------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        cfg = self.cfg
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,  # persistent session: the broker keeps our state across reconnects
            protocol=mqtt.MQTTv311,
            may_connect=self._may_connect,
            max_packet=self.max_packet_size,
            on_oversized=self._on_oversized,
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
        client.will_set(self.topics.status, self.offline_payload, qos=1, retain=True)
        # paho retries every second; _may_connect decides which of those ticks really connect.
        client.reconnect_delay_set(min_delay=1, max_delay=1)
        client.max_inflight_messages_set(cfg.max_inflight + 10)  # headroom for status/stats messages
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def set_status(self, online: str, offline: str) -> None:
        """Retained status payloads (default ``online``/``offline``; with remote updates a JSON
        object with ``state`` and the config version). Republished at once when connected."""
        self.online_payload, self.offline_payload = online, offline
        self.client.will_set(self.topics.status, offline, qos=1, retain=True)  # used from the next connect
        if self.connected:
            self.client.publish(self.topics.status, online, qos=1, retain=True)

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

    def _log_due(self, key: str) -> bool:
        """True if a connection problem of kind ``key`` is due to be logged (once per minute)."""
        return key != self._last_err_key or time.monotonic() - self._last_err_time >= _LOG_REPEAT

    def _log_error(self, key: str, msg: str, *args: Any) -> None:
        """Log a connection problem once per minute per kind (a dead broker would flood the log)."""
        if self._log_due(key):
            log.error(msg, *args)
            self._last_err_key, self._last_err_time = key, time.monotonic()

    def _may_connect(self) -> bool:
        """Whether paho's reconnect tick (about 1/s) really connects now: when the backoff has
        run out, or at once when the broker answers TCP again after it did not."""
        if self._stopping:
            return False
        if time.monotonic() >= self._next_try:
            self._attempt_failed = False
            return True
        if self._unreachable and self._broker_answers():
            log.info("MQTT broker %s:%d answers again; reconnecting now", self.cfg.host, self.cfg.port)
            self._attempt_failed = False
            return True
        return False

    def _broker_answers(self) -> bool:
        try:
            with socket.create_connection((self.cfg.host, self.cfg.port), timeout=_PROBE_TIMEOUT):
                return True
        except OSError:
            return False

    def _attempt_done(self, failed: bool, unreachable: bool = False) -> None:
        """Book an attempt: success resets the backoff, a failure doubles it (up to the cap)."""
        if not failed:
            self._delay = float(self.cfg.reconnect_min_delay)
            self._next_try, self._unreachable = 0.0, False
            return
        self._attempt_failed = True
        self._unreachable = unreachable
        self._next_try = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, float(self.cfg.reconnect_max_delay))

    @property
    def _tls(self) -> bool:
        return bool(self.cfg.tls or self.cfg.tls_ca or self.cfg.tls_cert)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            hint = ""
            if str(reason) in {"Not authorized", "Bad user name or password"}:
                hint = " (check mqtt.username / mqtt.password)"
            self.last_error = f"refused: {reason}"
            self._attempt_done(failed=True)
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
        self._attempt_done(failed=False)
        log.info(
            "MQTT connected to %s:%d (session present: %s)",
            self.cfg.host,
            self.cfg.port,
            flags.session_present,
        )
        client.publish(self.topics.status, self.online_payload, qos=1, retain=True)
        for topic, payload in self._retained:
            client.publish(topic, payload, qos=1, retain=True)
        for topic_filter, qos in self._subscriptions:
            client.subscribe(topic_filter, qos=qos)
        self._reconnected = True
        self.connected = True
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        err = getattr(client, "edge_error", None)
        if err is None:  # a backoff tick (_NotYet), not an attempt
            return
        key, cause, answered = explain_connect_error(err, self._tls)
        if key == "tls:reset":
            if self._log_due(f"fail:{key}"):  # diagnose once per log line, not on every retry
                self._plain_port = not speaks_tls(self.cfg.host, self.cfg.port)
            if self._plain_port:
                cause = cause.replace(_RESET_HINT, _PLAIN_PORT_HINT)  # checked: a plain port reset us
        self.last_error = cause
        self._attempt_done(failed=True, unreachable=not answered)
        self._log_error(
            f"fail:{key}",
            "MQTT broker %s:%d: %s; retrying with backoff",
            self.cfg.host,
            self.cfg.port,
            cause,
        )

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        was = self.connected
        self.connected = False
        if self._stopping:
            return
        if was:
            log.warning(
                "MQTT disconnected from %s:%d (%s); events wait in the outbox",
                self.cfg.host,
                self.cfg.port,
                reason,
            )
        elif not self._attempt_failed:
            # Closed after the TCP connect and before any CONNACK: nothing else reports this
            # (typically a plain client on a TLS port: the broker drops the bad handshake).
            self._attempt_done(failed=True)
            if self._log_due("closed"):  # diagnose once per log line, not on every retry
                self._closed_hint = "wrong port, or the broker rejected the client (see the broker log)"
                if not self._tls and speaks_tls(self.cfg.host, self.cfg.port):
                    self._closed_hint = "the port expects TLS: set mqtt.tls: true (and mqtt.tls_ca for a private CA)"
            hint = self._closed_hint
            self.last_error = f"closed before CONNACK ({hint})"
            self._log_error(
                "closed",
                "MQTT broker %s:%d closed the connection before accepting it (%s); %s; retrying",
                self.cfg.host,
                self.cfg.port,
                reason,
                hint,
            )

    def _on_oversized(self, topic: str, size: int, head: bytes) -> None:
        """A message discarded unread (too big): tell whoever subscribed for it, else log it."""
        handlers = [cb for f, cb in self._oversized if mqtt.topic_matches_sub(f, topic)]
        if not handlers:
            log.warning("MQTT: dropped a %d byte message on %s (max %d)", size, topic, self.max_packet_size)
        for cb in handlers:
            cb(topic, size, head)

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

    def subscribe(
        self,
        topic_filter: str,
        callback: Callable[[str, bytes], None],
        qos: int = 1,
        on_oversized: OnOversized | None = None,
    ) -> None:
        """Call ``callback(topic, payload)`` for messages matching ``topic_filter`` (subscribed again
        on every connect). It runs on paho's network thread: keep it short; what it raises is logged.
        A message above ``max_packet_size`` never reaches ``callback``: it is discarded unread and
        ``on_oversized(topic, size, first bytes of the payload)`` is called instead."""
        if on_oversized is not None:
            self._oversized.append((topic_filter, on_oversized))

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
            info = self.client.publish(self.topics.status, self.offline_payload, qos=1, retain=True)
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
