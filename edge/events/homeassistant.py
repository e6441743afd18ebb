"""Home Assistant MQTT discovery: retained config messages so the device shows up by itself."""

from __future__ import annotations

import json
from collections.abc import Iterable

from edge import __version__
from edge.events.topics import OFFLINE, ONLINE, Topics


def discovery_messages(
    topics: Topics, cameras: Iterable[str], lines: Iterable[tuple[str, str]] = ()
) -> list[tuple[str, bytes]]:
    """(topic, payload) pairs: a connectivity sensor, outbox depth, per camera the last track
    label and last plate, and per counted ``(camera, line)`` and direction the crossings of the
    last ``count`` interval."""
    device = topics.device
    dev = {
        "identifiers": [f"edge_{device}"],
        "name": f"Edge {device}",
        "manufacturer": "edge-appliance",
        "sw_version": __version__,
    }
    avail = {
        "availability_topic": topics.status,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
    }
    msgs: list[tuple[str, dict[str, object]]] = [
        (
            topics.discovery("binary_sensor", f"edge_{device}_status"),
            {
                "name": "Online",
                "unique_id": f"edge_{device}_status",
                "state_topic": topics.status,
                "payload_on": ONLINE,
                "payload_off": OFFLINE,
                "device_class": "connectivity",
                "device": dev,
            },
        ),
        (
            topics.discovery("sensor", f"edge_{device}_outbox"),
            {
                "name": "Outbox depth",
                "unique_id": f"edge_{device}_outbox",
                "state_topic": topics.stats,
                "value_template": "{{ value_json.outbox.depth }}",
                "device": dev,
                **avail,
            },
        ),
    ]
    for cam in cameras:
        msgs.append(
            (
                topics.discovery("sensor", f"edge_{device}_{cam}_track"),
                {
                    "name": f"{cam} last object",
                    "unique_id": f"edge_{device}_{cam}_track",
                    "state_topic": topics.event(cam, "track"),
                    "value_template": "{{ value_json.label }}",
                    "json_attributes_topic": topics.event(cam, "track"),
                    "device": dev,
                    **avail,
                },
            )
        )
        msgs.append(
            (
                topics.discovery("sensor", f"edge_{device}_{cam}_plate"),
                {
                    "name": f"{cam} last plate",
                    "unique_id": f"edge_{device}_{cam}_plate",
                    "state_topic": topics.event(cam, "plate"),
                    "value_template": "{{ value_json.attrs.plate | default('') }}",
                    "json_attributes_topic": topics.event(cam, "plate"),
                    "device": dev,
                    **avail,
                },
            )
        )
    for cam, line in lines:
        for direction in ("in", "out"):
            uid = f"edge_{device}_{cam}_{line}_{direction}"
            msgs.append(
                (
                    topics.discovery("sensor", uid),
                    {
                        "name": f"{cam} {line} {direction} per interval",
                        "unique_id": uid,
                        "state_topic": topics.event(cam, "count"),
                        "value_template": _line_template(line, direction),
                        "unit_of_measurement": "vehicles",
                        "state_class": "measurement",
                        "device": dev,
                        **avail,
                    },
                )
            )
    return [(t, json.dumps(p, separators=(",", ":")).encode()) for t, p in msgs]


def _line_template(line: str, direction: str) -> str:
    """HA Jinja: the crossings of ``line`` in ``direction`` in a count event (0 when absent)."""
    return f"{{{{ value_json.attrs.lines.get('{line}', {{}}).get('{direction}', {{}}).values() | sum }}}}"
