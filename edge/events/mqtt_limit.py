"""A paho client that discards incoming packets above a size limit as they arrive.

paho-mqtt reads every packet whole into memory before it looks at it (and ``recv`` asks for the
whole remaining length at once), and MQTT allows packets of 256 MB: anyone who may publish on a
device's command topic could make it allocate that much (a 64 MB command raised the device's
peak RSS by ~190 MB). MQTT 5's Maximum Packet Size would have the broker drop such messages
instead, but mosquitto 2.0 leaves every dropped QoS 1 message in the client's inflight window,
and after ``max_inflight_messages`` (20) of them it sends that client nothing at all, for good.

So the client does it: once a packet's length is known and above ``max_packet`` its bytes are
read in 64 KiB chunks and thrown away (only the first ~66 KiB are kept: topic, packet id and
the start of the payload); then a QoS 1/2 PUBLISH is acknowledged (the broker must not send it
again) and ``on_oversized(topic, payload size, payload head)`` is called on paho's network thread.

This leans on paho internals that have been stable since 1.x (``_sock_recv``, ``_packet_read``,
``_in_packet``, ``_send_puback``/``_send_pubrec``); tests/test_commands_big_payload.py checks it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

log = logging.getLogger("edge.events.mqtt")

OnOversized = Callable[[str, int, bytes], None]

_CHUNK = 64 * 1024
_HEAD = 2 + 65535 + 2 + 4 + 1024  # the longest topic, packet id, MQTT 5 property length, payload start
_PUBLISH = 0x30


@dataclass
class _Skip:
    """An oversized packet being read and discarded."""

    command: int
    size: int  # remaining length: variable header + payload
    left: int
    head: bytearray = field(default_factory=bytearray)


def _varint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    """An MQTT variable byte integer at ``pos``: (value, position after it)."""
    value, mult = 0, 1
    for i in range(4):
        byte = data[pos + i]
        value += (byte & 0x7F) * mult
        if not byte & 0x80:
            return value, pos + i + 1
        mult *= 128
    raise ValueError("malformed variable byte integer")


def parse_publish_head(command: int, head: bytes | bytearray, v5: bool) -> tuple[str, int | None, int]:
    """Topic, packet id (None for QoS 0) and where the payload starts, from a PUBLISH's first bytes."""
    qos = (command & 0x06) >> 1
    n = int.from_bytes(head[0:2], "big")
    topic = bytes(head[2 : 2 + n]).decode("utf-8", "replace")
    pos = 2 + n
    mid = None
    if qos:
        mid = int.from_bytes(head[pos : pos + 2], "big")
        pos += 2
    if v5:
        props, pos = _varint(head, pos)
        pos += props
    return topic, mid, pos


class LimitedClient(mqtt.Client):
    """``mqtt.Client`` that never buffers an incoming packet larger than ``max_packet`` bytes."""

    def __init__(self, *args: Any, max_packet: int, on_oversized: OnOversized, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.edge_max_packet = max_packet
        self.edge_on_oversized = on_oversized
        self._edge_skip: _Skip | None = None

    def reconnect(self) -> MQTTErrorCode:
        """A new connection starts with a new packet (paho resets its own read state too)."""
        self._edge_skip = None
        return super().reconnect()

    def _sock_recv(self, bufsize: int) -> bytes:
        p = self._in_packet
        if self._edge_skip is None and p["have_remaining"] and p["remaining_length"] > self.edge_max_packet:
            # paho knows the length and is about to read the body whole: take over instead
            self._edge_skip = _Skip(p["command"], p["remaining_length"], p["to_process"])
            raise BlockingIOError  # to paho: "no data yet"; _packet_read discards it from now on
        return super()._sock_recv(bufsize)

    def _packet_read(self) -> MQTTErrorCode:
        if self._edge_skip is None:
            return super()._packet_read()
        skip = self._edge_skip
        for _ in range(100):  # like paho: give the loop back now and then
            if skip.left <= 0:
                break
            try:
                data = super()._sock_recv(min(skip.left, _CHUNK))
            except BlockingIOError:
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError:
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            if not data:
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            skip.left -= len(data)
            if len(skip.head) < _HEAD:
                skip.head += data[: _HEAD - len(skip.head)]
            self._last_bytes_received = mqtt.time_func()  # keepalive: the broker is talking
        if skip.left > 0:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        self._edge_skip = None
        self._in_packet = {  # paho's empty read state (what it sets after every packet)
            "command": 0,
            "have_remaining": 0,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": 0,
            "packet": bytearray(b""),
            "to_process": 0,
            "pos": 0,
        }
        return self._oversized(skip)

    def _oversized(self, skip: _Skip) -> MQTTErrorCode:
        if skip.command & 0xF0 != _PUBLISH:  # nothing else a broker sends is ever this big
            log.error("MQTT broker sent a %d byte packet of type %#x; reconnecting", skip.size, skip.command >> 4)
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        try:
            topic, mid, start = parse_publish_head(skip.command, skip.head, self.protocol == mqtt.MQTTv5)
        except (IndexError, ValueError):
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        qos = (skip.command & 0x06) >> 1
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        if qos == 1 and mid is not None:
            rc = self._send_puback(mid)  # handled (refused): the broker must not send it again
        elif qos == 2 and mid is not None:
            rc = self._send_pubrec(mid)  # paho answers the PUBREL of an unknown id with PUBCOMP
        try:
            self.edge_on_oversized(topic, skip.size - start, bytes(skip.head[start:]))
        except Exception:  # an exception here would end paho's network loop
            log.exception("MQTT oversized-message handler for %s failed", topic)
        return rc
