"""MQTT topic layout, in one place.

``<prefix>/<device>/<camera>/events/<type>``   events (QoS 1 by default, through the outbox)
``<prefix>/<device>/<camera>/snapshot/<id>``  optional JPEG crop for event ``<id>`` (best effort)
``<prefix>/<device>/status``                 retained ``online``/``offline`` (last will)
``<prefix>/<device>/stats``                  periodic JSON health summary
``<prefix>/<device>/cmd/<name>``             operator commands in; answers on ``cmd/reply``
``homeassistant/<component>/<object>/config`` optional Home Assistant discovery (retained)
"""

from __future__ import annotations

from dataclasses import dataclass

ONLINE = "online"
OFFLINE = "offline"


@dataclass(frozen=True)
class Topics:
    """Topic names for one device."""

    prefix: str
    device: str
    discovery_prefix: str = "homeassistant"

    @property
    def base(self) -> str:
        """``<prefix>/<device>``."""
        return f"{self.prefix}/{self.device}"

    @property
    def status(self) -> str:
        """Retained online/offline topic, also the last will."""
        return f"{self.base}/status"

    @property
    def stats(self) -> str:
        """Periodic JSON stats."""
        return f"{self.base}/stats"

    def event(self, camera: str, event_type: str) -> str:
        """Topic of one camera's events of one type."""
        return f"{self.base}/{camera}/events/{event_type}"

    def snapshot(self, camera: str, event_id: str) -> str:
        """Topic of the JPEG crop that belongs to event ``event_id``."""
        return f"{self.base}/{camera}/snapshot/{event_id}"

    def discovery(self, component: str, object_id: str) -> str:
        """Home Assistant discovery config topic."""
        return f"{self.discovery_prefix}/{component}/{object_id}/config"

    def cmd(self, name: str = "#") -> str:
        """Command topics: ``cmd("#")`` is the device's subscription, ``cmd("reply")`` its answers."""
        return f"{self.base}/cmd/{name}"
