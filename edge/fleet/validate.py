"""The fleet's door: every MQTT message a device sends is checked here before anything is stored.

A device has its own certificate and ACL, so its payloads are untrusted: an event must pass the
event schema (:class:`edge.events.schema.Event`, strict: no ``"5"`` for an int) and fit the
columns it is stored in (64-bit integers, finite numbers, string lengths, no NUL, valid
Unicode); its device, camera and type must be the topic's (the broker's ACL binds the topic to
the device's certificate, so the topic is the truth); ids (event, visit, anomaly, evidence) have
the schema's id format. Status, stats and command replies get the same treatment. A message
that fails raises :class:`Rejected` with a low-cardinality ``reason`` (the
``edge_fleet_rejected_total`` label) and a short ``detail`` (which field, what was wrong; never
the value: it may be megabytes, or a secret).
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from edge.config import Name
from edge.events.payloads import CrossingsAttrs
from edge.events.schema import Event
from edge.fleet.counts import rows_of
from edge.fleet.migrations.m001_initial import events
from edge.fleet.migrations.m003_counts import counts, zone_counts
from edge.fleet.store import Batch, derived_row, event_row

# reasons (the metric's label values): keep this set small and fixed
TOO_LARGE = "too_large"  # payload over the limit for its topic
JSON = "json"  # not UTF-8 JSON
SCHEMA = "schema"  # wrong shape: type, missing or unknown field, id or time format
BOUNDS = "bounds"  # a number the database cannot hold (64-bit, finite) or a string too long for its column
TEXT = "text"  # NUL or invalid Unicode in a string
DEVICE_MISMATCH = "device_mismatch"  # payload device is not the topic's
TOPIC = "topic"  # unknown topic shape, bad device/camera name in it, camera/type not the topic's
WRITE_FAILED = "write_failed"  # the database refused the row after the retries
INTERNAL = "internal"  # ingest itself failed on the message (a bug: logged with its traceback)
REASONS = (TOO_LARGE, JSON, SCHEMA, BOUNDS, TEXT, DEVICE_MISMATCH, TOPIC, WRITE_FAILED, INTERNAL)

MAX_EVENT_BYTES = 64 * 1024  # a track event is ~300 B, a long visit ~2 kB
MAX_JSON_BYTES = 64 * 1024  # stats, command replies
MAX_STATUS_BYTES = 4 * 1024
MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024  # a JPEG crop is tens of kB
DEAD_LETTER_BYTES = 256  # payload bytes kept in a dead letter
INT64 = 2**63
MAX_DIGITS = 20  # of an integer literal: more cannot be 64-bit (and Python's int() is slow on 4,000)

ID = re.compile(Event.model_json_schema()["properties"]["id"]["pattern"])  # the schema's id format
_NAME = re.compile(TypeAdapter(Name).json_schema()["pattern"])  # device ids and camera names, as in the device config
# JSON can only carry a NUL or a lone surrogate as a \u escape: without one, no string needs a look
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_STATUS_WORD = re.compile(r"^[A-Za-z0-9_-]{1,20}$")
_JPEG = b"\xff\xd8\xff"

# attrs of visit/anomaly events that become columns (docs/events.md): their types are checked
# before the rows are built; the rows' lengths and numbers are checked against the columns
_ATTR_IDS = ("visit", "anomaly")
_ATTR_TIMES = ("time_in", "time_out", "raised_at")
_ATTR_TEXT = (
    "entry_camera", "exit_camera", "status", "state", "plate", "plate_hash", "type", "road_in", "road_out",
    "rule", "kind", "severity", "reason",
)  # fmt: skip


class Rejected(Exception):
    """A message ingest refuses: ``reason`` is one of :data:`REASONS`, ``detail`` says what."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


# --- decoding ------------------------------------------------------------------------------------


def _bad_constant(name: str) -> Any:
    raise Rejected(BOUNDS, f"{name} is not a number the database can hold")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise Rejected(BOUNDS, f"number {text[:20]} is out of range")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise Rejected(BOUNDS, f"integer of {len(text)} digits is outside 64 bits")
    value = int(text)
    if not -INT64 <= value < INT64:
        raise Rejected(BOUNDS, "integer outside 64 bits")
    return value


def decode_json(payload: bytes, limit: int) -> Any:
    """UTF-8 JSON within ``limit`` bytes, without NaN/Infinity, every integer within 64 bits and
    every float finite, every string (keys too) without NUL and encodable as UTF-8."""
    if len(payload) > limit:
        raise Rejected(TOO_LARGE, f"{len(payload):,} bytes (limit {limit:,})")
    try:
        text = payload.decode("utf-8")
        data = json.loads(text, parse_constant=_bad_constant, parse_float=_float, parse_int=_int)
        if _SUSPECT_ESCAPE.search(text):
            check_text(data)
        return data
    except UnicodeDecodeError:
        raise Rejected(JSON, "not UTF-8") from None
    except RecursionError:
        raise Rejected(JSON, "nested too deeply") from None
    except ValueError as err:
        raise Rejected(JSON, f"not JSON: {err.args[0] if err.args else err}"[:120]) from None


def check_text(value: Any) -> None:
    """Every string in ``value`` (keys too) without NUL and encodable as UTF-8 (iterative: a
    deeply nested payload costs no recursion)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            _check_text(v)
        elif isinstance(v, dict):
            for k, x in v.items():
                _check_text(k)
                stack.append(x)
        elif isinstance(v, list):
            stack.extend(v)


def _check_text(s: str) -> None:
    if "\x00" in s:
        raise Rejected(TEXT, "NUL character in a string")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): neither database stores it
        raise Rejected(TEXT, "invalid Unicode (lone surrogate) in a string") from None


def _name(value: str, what: str) -> None:
    if not _NAME.fullmatch(value):
        raise Rejected(TOPIC, f"{what} in the topic is not a valid name (1-64 of A-Z a-z 0-9 _ -)")


def _iso(value: Any, field: str) -> None:
    if not isinstance(value, str) or len(value) > 40:
        raise Rejected(SCHEMA, f"{field}: not an ISO 8601 time")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        raise Rejected(SCHEMA, f"{field}: not an ISO 8601 time") from None


def _id(value: Any, field: str) -> None:
    if not isinstance(value, str) or not ID.fullmatch(value):
        raise Rejected(SCHEMA, f"{field}: not an id ({ID.pattern})")


@cache
def _columns(table: sa.Table) -> dict[str, tuple[str, int | None, bool]]:
    """name -> (kind, max length, required) of each column, read once from the schema."""
    out: dict[str, tuple[str, int | None, bool]] = {}
    for col in table.c:
        t = col.type
        kind = (
            "bool" if isinstance(t, sa.Boolean) else "int" if isinstance(t, sa.Integer)
            else "float" if isinstance(t, sa.Float) else "str" if isinstance(t, sa.String) else "any"
        )  # fmt: skip
        out[col.name] = (kind, getattr(t, "length", None), not col.nullable and not col.primary_key)
    return out


def check_row(table: sa.Table, row: dict[str, Any]) -> None:
    """Each value fits its column: type, string length, 64-bit integers, finite floats."""
    columns = _columns(table)
    for name, value in row.items():
        kind, length, required = columns[name]
        if value is None:
            if required:
                raise Rejected(SCHEMA, f"{table.name}.{name}: missing")
            continue
        where = f"{table.name}.{name}"
        if kind == "str":  # Text too (length None)
            ok = type(value) is str
            if ok and length is not None and len(value) > length:
                raise Rejected(BOUNDS, f"{where}: longer than {length} characters")
        elif kind == "int":
            ok = type(value) is int
            if ok and not -INT64 <= value < INT64:
                raise Rejected(BOUNDS, f"{where}: integer outside 64 bits")
        elif kind == "float":
            ok = type(value) in (int, float)
            if ok and not math.isfinite(value):
                raise Rejected(BOUNDS, f"{where}: not a finite number")
        else:
            ok = kind == "any" or type(value) is bool
        if not ok:
            raise Rejected(SCHEMA, f"{where}: wrong type ({type(value).__name__})")


def _validated(model: type[BaseModel], d: dict[str, Any], what: str) -> None:
    """``d`` passes ``model`` (strict: no ``"5"`` for an int); else SCHEMA naming the first field."""
    try:
        model.model_validate(d, strict=True)
    except ValidationError as err:
        e = err.errors(include_input=False, include_url=False)[0]
        loc = ".".join(str(x) for x in e["loc"])
        raise Rejected(SCHEMA, f"{what}{'.' if what and loc else ''}{loc}: {e['msg']}"[:200]) from None


def _object(device: str, payload: bytes, limit: int, what: str) -> dict[str, Any]:
    """A JSON object from ``device`` within ``limit`` bytes (decoded by :func:`decode_json`)."""
    _name(device, "device")
    d = decode_json(payload, limit)
    if not isinstance(d, dict):
        raise Rejected(SCHEMA, f"{what} must be a JSON object, got {type(d).__name__}")
    return d


def _derived_attrs(d: dict[str, Any]) -> None:
    a = d.get("attrs") or {}
    for k in _ATTR_IDS:
        if a.get(k) is not None:
            _id(a[k], f"attrs.{k}")
    if a.get("evidence") is not None:
        ev = a["evidence"]
        if not isinstance(ev, list):
            raise Rejected(SCHEMA, "attrs.evidence: not a list of ids")
        for x in ev:
            _id(x, "attrs.evidence")
    for k in _ATTR_TIMES:
        if a.get(k) is not None:
            _iso(a[k], f"attrs.{k}")
    for k in _ATTR_TEXT:
        if a.get(k) is not None and not isinstance(a[k], str):
            raise Rejected(SCHEMA, f"attrs.{k}: not a string")


# --- one check per topic kind ----------------------------------------------------------------------


def check_event(device: str, camera: str, etype: str, payload: bytes) -> dict[str, Any]:
    """The event published on ``<p>/<device>/<camera>/events/<etype>``, decoded and checked."""
    _name(camera, "camera")
    d = _object(device, payload, MAX_EVENT_BYTES, "an event")
    _validated(Event, d, "")
    if "id" not in d:  # optional in the schema (a producer may leave it to the model): the dedupe key here
        raise Rejected(SCHEMA, "id: Field required (the key events are deduplicated on)")
    if d["device"] != device:
        raise Rejected(DEVICE_MISMATCH, "the payload's device is not the topic's")
    if d["camera"] != camera or d["type"] != etype:
        raise Rejected(TOPIC, "the payload's camera or type is not the topic's")
    _iso(d["ts"], "ts")
    if d.get("start") is not None:
        _iso(d["start"], "start")
    if d["type"] in ("visit", "anomaly"):
        _derived_attrs(d)
        found = derived_row(device, d)
        if found is not None:
            check_row(*found)
    if d["type"] == "count":
        _count_rows(d)
    if d["type"] == "crossings":  # stored as an event (``body``); the fleet's rules read its rows
        _validated(CrossingsAttrs, d.get("attrs") or {}, "attrs")
    check_row(events, event_row(d, time.time()))
    return d


def _count_rows(d: dict[str, Any]) -> None:
    """A count event's attrs have the shape edge.counts sends and its rows fit their columns."""
    try:
        lines, zones = rows_of(d)
    except ValueError as err:
        raise Rejected(SCHEMA, str(err)) from None
    for row in lines:
        check_row(counts, row)
    for row in zones:
        check_row(zone_counts, row)


class _Stats(BaseModel):
    """The parts of ``<p>/<device>/stats`` the console reads (edge.app.stats_payload); the rest is free."""

    model_config = ConfigDict(extra="allow")

    cameras: dict[str, dict[str, Any]] = {}
    outbox: dict[str, Any] | None = None
    open: dict[str, Any] | None = None


def check_stats(device: str, payload: bytes) -> dict[str, Any]:
    """A device's periodic stats: a JSON object whose ``cameras``/``outbox``/``open`` are objects."""
    d = _object(device, payload, MAX_JSON_BYTES, "stats")
    _validated(_Stats, d, "stats")
    return d


def check_status(device: str, payload: bytes) -> str:
    """A device's retained status: ``online``/``offline``, or the update manager's JSON object
    (``{"state": "online", ...}``); returns the state word."""
    _name(device, "device")
    if len(payload) > MAX_STATUS_BYTES:
        raise Rejected(TOO_LARGE, f"{len(payload):,} bytes (limit {MAX_STATUS_BYTES:,})")
    word: Any = None
    if payload.lstrip().startswith(b"{"):
        d = decode_json(payload, MAX_STATUS_BYTES)
        word = d.get("state") if isinstance(d, dict) else None
    else:
        try:
            word = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise Rejected(JSON, "not UTF-8") from None
    if not isinstance(word, str) or not _STATUS_WORD.fullmatch(word):
        raise Rejected(SCHEMA, "status: a word (online/offline) or a JSON object with a state word")
    return word


def check_reply(device: str, payload: bytes) -> dict[str, Any]:
    """A command reply: a JSON object with a string ``id`` (a command's id: 1-64 characters)."""
    d = _object(device, payload, MAX_JSON_BYTES, "a reply")
    cid = d.get("id")
    if not isinstance(cid, str) or not 1 <= len(cid) <= 64:
        raise Rejected(SCHEMA, "reply.id: not a command id")
    return d


def check_snapshot(device: str, camera: str, event_id: str, payload: bytes) -> dict[str, Any]:
    """A JPEG crop on ``<p>/<device>/<camera>/snapshot/<event id>``: the ``snapshots`` row."""
    _name(device, "device")
    _name(camera, "camera")
    if not ID.fullmatch(event_id):
        raise Rejected(TOPIC, f"snapshot event id in the topic is not an id ({ID.pattern})")
    if len(payload) > MAX_SNAPSHOT_BYTES:
        raise Rejected(TOO_LARGE, f"{len(payload):,} bytes (limit {MAX_SNAPSHOT_BYTES:,})")
    if not payload.startswith(_JPEG):
        raise Rejected(SCHEMA, "snapshot: not a JPEG")
    return {"event_id": event_id, "device": device, "camera": camera, "jpeg": payload, "received": time.time()}


def admit(prefix: str, topic: str, payload: bytes) -> tuple[str, Batch]:
    """What a message writes, by topic: ``(kind, batch)``; raises :class:`Rejected`.

    ``kind`` is ``event``, ``snapshot``, ``status``, ``stats`` or ``reply``."""
    parts = topic.split("/")
    if parts[0] != prefix:
        raise Rejected(TOPIC, "not under the topic prefix")
    if len(parts) == 5 and parts[3] == "events":
        return "event", Batch(events=[check_event(parts[1], parts[2], parts[4], payload)])
    if len(parts) == 5 and parts[3] == "snapshot":
        return "snapshot", Batch(snapshots=[check_snapshot(parts[1], parts[2], parts[4], payload)])
    if len(parts) == 3 and parts[2] == "status":
        return "status", Batch(statuses=[{"device": parts[1], "status": check_status(parts[1], payload)}])
    if len(parts) == 3 and parts[2] == "stats":
        return "stats", Batch(statuses=[{"device": parts[1], "stats": check_stats(parts[1], payload)}])
    if len(parts) == 4 and parts[2:] == ["cmd", "reply"]:
        return "reply", Batch(replies=[(parts[1], check_reply(parts[1], payload))])
    raise Rejected(TOPIC, "unknown topic shape")


def printable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with control characters and lone surrogates as ``?``
    (topics and details go into a text column and into logs)."""
    out = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return out.encode("utf-8", "replace").decode("utf-8")


def dead_letter(topic: str, payload: bytes, reason: str, detail: str, received: float) -> dict[str, Any]:
    """The ``dead_letters`` row of a refused message (safe to store whatever the message held)."""
    return {
        "received": received, "topic": printable(topic, 200), "reason": reason, "detail": printable(detail, 300),
        "size": len(payload), "payload": bytes(payload[:DEAD_LETTER_BYTES]),
    }  # fmt: skip
