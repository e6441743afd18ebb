"""The device rule engine on the merged stream of many devices.

Camera names and track ids are unique only per device, so every event is fed to the engine
with ``camera = "<device>/<camera>"`` (rules' ``cameras:`` filters use those names too). A visit
can then open on one device's entry line and close on another device's exit line, matched by
plate like two cameras of one device. What the engine derives is stored with ``origin`` = the
fleet engine's id (``rules.device_id``), and operator commands for its anomalies go to
``<prefix>/<device_id>/cmd/...``, where :class:`FleetRules` answers them with the device's
:class:`edge.commands.CommandHandler`.

A visit whose entry device runs visits too is made twice, by that device and here (same entry
crossing event and time). Both rows are stored (each engine's anomalies name its own visit id)
and reads merge them into one (:func:`edge.fleet.store.visit_twin_better`): the engine must still
track every visit, because only the exit tells whether it ends at another device.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from edge.clock import SystemClock
from edge.counts.batch import line_events
from edge.events.schema import Event
from edge.fleet.config import FleetRules
from edge.rules.engine import RuleEngine

SEEN_MAX = 200_000  # event ids remembered for the engine's own deduplication


def namespaced(e: dict[str, Any]) -> Event:
    """The event as the fleet engine sees it: camera ``device/camera``."""
    return Event.model_validate({**e, "camera": f"{e['device']}/{e['camera']}"})


def _unbatched(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``crossings`` batches (devices at ``events.detail: crossings``) as the line events they stand for."""
    return [x for e in events for x in (line_events(e) if e.get("type") == "crossings" else [e])]


class FleetEngine:
    """A :class:`RuleEngine` fed every event once; derived events go to ``sink``."""

    def __init__(self, cfg: FleetRules, sink: Callable[[list[Event]], None]) -> None:
        self.cfg = cfg
        self.device_id = cfg.device_id
        self.engine = RuleEngine(cfg, store_path=cfg.state, clock=SystemClock())
        self.sink = sink
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def feed(self, events: list[dict[str, Any]]) -> list[Event]:
        """Process raw device events (own duplicates skipped, derived ones ignored); returns derived events."""
        out: list[Event] = []
        with self._lock:
            for e in _unbatched(events):
                if e.get("type") in ("visit", "anomaly") or e["id"] in self._seen:
                    continue
                self._seen[e["id"]] = None
                if len(self._seen) > SEEN_MAX:
                    self._seen.popitem(last=False)
                out += self.engine.process(namespaced(e))
        return [self.stamp(x) for x in out]

    def tick(self, now: float) -> list[Event]:
        """Time-based rules."""
        return [self.stamp(x) for x in self.engine.tick(now)]

    def emit(self, event: Event) -> Event:
        """The CommandHandler's bus: operator ack/resolve results go to the sink."""
        stamped = self.stamp(event)
        self.sink([stamped])
        return stamped

    def stamp(self, e: Event) -> Event:
        return e.model_copy(update={"device": self.device_id})

    def close(self) -> None:
        self.engine.close()
