"""Operator commands over MQTT: ``<prefix>/<device>/cmd/<anything>`` in, ``.../cmd/reply`` out.

paho's network thread only checks the size and queues the payload (bounded; overflow is answered
``busy``); one worker thread decodes, authenticates, validates and executes, so a flood of
garbage or a slow SQLite write never stalls MQTT. Every payload ends in exactly one outcome
counter (``ok``, ``invalid``, ``unknown``, ``oversized``, ``unauthorized``, ``failed``, ``busy``)
and gets a reply when an ``id`` can be recovered from it. Nothing here raises into its caller.

The handler is also a bus :class:`~edge.events.bus.Processor`: it records every delivered event
in the feedback store, so a ``feedback`` command can name any recent event.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from edge.commands.schema import COMMANDS, AnomalyCommand, FeedbackCommand, parse_command, short_repr
from edge.commands.signing import ReplayGuard, Unauthorized, verify
from edge.config import CommandsConfig
from edge.events.schema import Event
from edge.events.topics import Topics
from edge.feedback.store import FeedbackRow, FeedbackStore

log = logging.getLogger("edge.commands")

OUTCOMES: tuple[str, ...] = ("ok", "invalid", "unknown", "oversized", "unauthorized", "failed", "busy")
_ID_IN_TEXT = re.compile(rb'"id"\s*:\s*"([\x21\x23-\x5b\x5d-\x7e]{1,64})"')  # printable, no quote/backslash
_STOP = object()


class AnomalyEngine(Protocol):
    """The part of ``edge.rules.RuleEngine`` that commands drive."""

    def ack(self, anomaly_id: str, by: str = "operator") -> list[Event]: ...

    def resolve(self, anomaly_id: str, by: str = "operator") -> list[Event]: ...

    def open_counts(self) -> dict[str, Any]: ...


class Emitter(Protocol):
    """Where derived events go (the :class:`~edge.events.bus.EventBus`)."""

    def emit(self, event: Event) -> Event: ...


class _Rejected(Exception):
    """A command that ends with ``ok: false``: outcome counter and the reason for the reply."""

    def __init__(self, outcome: str, error: str) -> None:
        super().__init__(error)
        self.outcome, self.error = outcome, error


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


class CommandHandler:
    """Receives, checks and executes commands; counts every outcome (plain ints, for metrics)."""

    def __init__(
        self,
        cfg: CommandsConfig,
        topics: Topics,
        publish: Callable[[str, bytes], object],
        store: FeedbackStore,
        *,
        engine: AnomalyEngine | None = None,
        bus: Emitter | None = None,
        clock: Callable[[], float] = time.time,
        updater: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        max_update_bytes: int = 0,
    ) -> None:
        """``updater``: the ``update`` command (edge.update, Ed25519-signed on its own; raises
        ``UpdateRefused``); its payloads may be up to ``max_update_bytes`` on ``cmd/update``."""
        self.cfg, self.topics, self.publish, self.store = cfg, topics, publish, store
        self.updater, self.max_update_bytes = updater, max_update_bytes
        self.update_topic = topics.cmd("update")
        self.engine, self.bus, self.clock = engine, bus, clock
        self.reply_topic = topics.cmd("reply")
        self._secret = cfg.secret.get_secret_value().encode("utf-8") if cfg.secret is not None else None
        window = cfg.max_age_s + cfg.max_clock_skew_s  # every id for as long as its ts is accepted
        self._guard = ReplayGuard(store.path, window) if self._secret is not None else None
        self.ok = self.invalid = self.unknown = self.oversized = 0
        self.unauthorized = self.failed = self.busy = 0
        self._count_lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=cfg.queue)
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> CommandHandler:
        """Start the worker thread."""
        if self._secret is None:  # anyone who may publish on the broker may ack and correct
            log.warning("MQTT commands are accepted unsigned; set commands.secret to require HMAC signatures")
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="edge-commands", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the queued commands (up to ``timeout``) and stop the worker."""
        if self._thread is not None:
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                log.warning("command queue still full at shutdown; pending commands dropped")
            self._thread.join(timeout)
            self._thread = None
        if self._guard is not None:
            self._guard.close()

    def counts(self) -> dict[str, int]:
        """Every outcome counter by name."""
        return {name: int(getattr(self, name)) for name in OUTCOMES}

    @property
    def total(self) -> int:
        """Payloads received so far (every one ends in exactly one outcome)."""
        return sum(self.counts().values())

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued command is handled; True if that happened in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return self._queue.unfinished_tasks == 0

    # -- bus processor: the recent-event index -------------------------------------------------

    def process(self, event: Event) -> list[Event]:
        """Remember the event for feedback look-ups; derives nothing."""
        try:
            self.store.record_event(event)
        except Exception:  # the index is a convenience: never let it break event delivery
            log.exception("recording event %s for feedback failed", event.id)
        return []

    def tick(self, now: float) -> list[Event]:
        """Nothing time-based."""
        return []

    # -- paho network thread -------------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes) -> None:
        """MQTT callback: size check and queue; never raises, never blocks."""
        try:
            if topic == self.reply_topic:
                return  # our own answers (the subscription is cmd/#)
            if len(payload) > self._limit(topic):
                self._refuse_size(topic, len(payload), payload)
                return
            try:
                self._queue.put_nowait(payload)
            except queue.Full:
                self._finish("busy", _id_from_text(payload[:512]), "busy: too many commands waiting, send again later")
        except Exception:
            log.exception("command receive failed")

    def on_oversized(self, topic: str, size: int, head: bytes) -> None:
        """MQTT callback for a message the client discarded unread (above its packet limit):
        counted and answered like any oversized command; never raises."""
        try:
            if topic != self.reply_topic:
                self._refuse_size(topic, size, head)
        except Exception:
            log.exception("command receive failed")

    def _limit(self, topic: str) -> int:
        if self.updater is not None and topic == self.update_topic:
            return max(self.cfg.max_bytes, self.max_update_bytes)
        return self.cfg.max_bytes

    def _refuse_size(self, topic: str, size: int, head: bytes) -> None:
        self._finish("oversized", _id_from_text(head[:512]), f"payload: {size} bytes (max {self._limit(topic)})")

    # -- worker thread -------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            payload = self._queue.get()
            try:
                if payload is _STOP:
                    return
                self.handle(payload)
            except Exception:  # belt and braces: the worker must survive anything
                log.exception("command handling failed")
            finally:
                self._queue.task_done()

    def handle(self, payload: bytes) -> dict[str, Any] | None:
        """Decode, check and execute one command; reply and count. Returns the reply (None if
        no id could be recovered, so nothing was sent)."""
        cmd_id: Any = None
        try:
            data = self._decode(payload)
            cmd_id = _id_from(data)
            if data.get("cmd") == "update":  # Ed25519-signed by the update key, not the HMAC secret
                return self._finish("ok", cmd_id, None, self._update(data))
            if self._secret is not None:
                self._authenticate(data)
            if data.get("cmd") not in COMMANDS:
                raise _Rejected(
                    "unknown", f"cmd: unknown command {short_repr(data.get('cmd'))} (expected {', '.join(COMMANDS)})"
                )
            try:
                command = parse_command(data)
            except ValueError as err:
                raise _Rejected("invalid", str(err)) from None
            result = self._execute(command)
        except _Rejected as rej:
            if cmd_id is None and rej.outcome == "invalid":
                cmd_id = _id_from_text(payload[:512])
            return self._finish(rej.outcome, cmd_id, rej.error)
        except Exception:
            log.exception("command %s failed", short_repr(cmd_id))
            return self._finish("failed", cmd_id, "internal error (see the device log)")
        return self._finish("ok", cmd_id, None, result)

    def _decode(self, payload: bytes) -> dict[str, Any]:
        try:
            data = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            raise _Rejected("invalid", f"payload: not JSON ({type(err).__name__})") from None
        if not isinstance(data, dict):
            raise _Rejected("invalid", f"payload: expected a JSON object, got {type(data).__name__}")
        return data

    def _authenticate(self, data: dict[str, Any]) -> None:
        assert self._secret is not None and self._guard is not None
        now = self.clock()
        try:
            verify(data, self._secret, now, self.cfg.max_age_s, self.cfg.max_clock_skew_s)
        except Unauthorized as err:
            raise _Rejected("unauthorized", str(err)) from None
        if not isinstance(data.get("id"), str) or not self._guard.first_use(data["id"], now):
            raise _Rejected("unauthorized", "id: already used (replayed command)")

    def _update(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.updater is None:
            raise _Rejected("failed", "cmd: remote updates are not enabled on this device (update.enabled)")
        from edge.update.manager import UpdateRefused

        try:
            return self.updater(data)
        except UpdateRefused as err:
            raise _Rejected(err.outcome, err.error) from None

    def _execute(self, command: AnomalyCommand | FeedbackCommand) -> dict[str, Any]:
        if isinstance(command, FeedbackCommand):
            return self._feedback(command)
        if self.engine is None:
            raise _Rejected("failed", "cmd: no rule engine runs on this device")
        action = self.engine.ack if command.cmd == "ack" else self.engine.resolve
        try:
            events = action(command.anomaly, by=command.by)
        except KeyError:
            raise _Rejected("failed", f"anomaly: unknown anomaly {short_repr(command.anomaly)}") from None
        except ValueError as err:
            raise _Rejected("failed", f"anomaly: {err or 'already resolved'}") from None
        for event in events:
            if self.bus is not None:
                self.bus.emit(event)
        return {"cmd": command.cmd, "anomaly": command.anomaly, "events": len(events)}

    def _feedback(self, command: FeedbackCommand) -> dict[str, Any]:
        event = self.store.event(command.event)
        if event is None:
            raise _Rejected("failed", f"event: unknown or too old event {command.event}")
        old = (event.get("attrs") or {}).get(command.field)
        if old is None and command.field == "type":
            old = event.get("label")  # a track without an attribute model is typed by its label
        self.store.add_feedback(
            FeedbackRow(
                command=command.id,
                ts=self.clock(),
                event=command.event,
                camera=event.get("camera"),
                field=command.field,
                old=None if old is None else str(old),
                new=command.value,
                note=command.note,
                event_json=json.dumps(event, separators=(",", ":")),
                jpeg=self.store.snapshot_for(command.event),
            )
        )
        return {"cmd": "feedback", "event": command.event, "field": command.field, "old": old, "new": command.value}

    # -- replies -------------------------------------------------------------------------------

    def _finish(
        self, outcome: str, cmd_id: Any, error: str | None, result: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        with self._count_lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
        if outcome != "ok":  # debug: a flood of garbage must not flood the log
            log.debug("command %s refused (%s): %s", short_repr(cmd_id), outcome, error)
        if cmd_id is None:
            return None  # nobody to answer
        reply: dict[str, Any] = {"id": cmd_id, "ok": outcome == "ok"}
        if error is not None:
            reply["error"] = error
        reply.update(result or {})
        try:
            self.publish(self.reply_topic, json.dumps(reply, separators=(",", ":")).encode("utf-8"))
        except Exception:
            log.exception("command reply failed")
        return reply


def _id_from(data: dict[str, Any]) -> str | int | None:
    """The command's id if it is usable for a reply (a short string or an integer)."""
    v = data.get("id")
    if isinstance(v, str) and 0 < len(v) <= 64:
        return v
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) < 10**18:
        return v
    return None


def _id_from_text(payload: bytes) -> str | None:
    """An id found in a payload that is not (valid) JSON, e.g. truncated or oversized."""
    m = _ID_IN_TEXT.search(payload)
    return m.group(1).decode("ascii") if m else None
