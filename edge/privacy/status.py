"""What the privacy layer did, for ``/metrics`` and ``/healthz``: pictures masked, pictures
withheld (not sent, or sent fully blurred) because a model could not load or failed, and the
current problem, if any."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

REASONS = ("model", "frame")  # could not load / failed on a picture


class PrivacyStatus:
    """Thread-safe counts per camera, shared by every camera of one appliance."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.masked: dict[str, int] = {}
        self.withheld: dict[tuple[str, str], int] = {}
        self.problems: dict[str, str] = {}  # camera -> why its pictures are withheld now
        self.since: dict[str, float] = {}

    def ok(self, camera: str) -> None:
        """One picture of ``camera`` masked and sent: a past problem is over."""
        with self._lock:
            self.masked[camera] = self.masked.get(camera, 0) + 1
            self.problems.pop(camera, None)
            self.since.pop(camera, None)

    def problem(self, camera: str, why: str) -> None:
        """The models of ``camera`` cannot be used: its pictures will be withheld (none counted yet)."""
        with self._lock:
            self.problems[camera] = why
            self.since.setdefault(camera, time.time())

    def withhold(self, camera: str, reason: str, why: str) -> None:
        """One picture of ``camera`` not sent unmasked, for ``reason`` (:data:`REASONS`)."""
        with self._lock:
            key = (camera, reason)
            self.withheld[key] = self.withheld.get(key, 0) + 1
            self.problems[camera] = why
            self.since.setdefault(camera, time.time())

    def health(self) -> tuple[dict[str, Any], list[str]]:
        """The ``privacy`` part of ``/healthz`` and its problems (one line per failing camera)."""
        with self._lock:
            withheld: dict[str, int] = {}
            for (cam, _), n in self.withheld.items():
                withheld[cam] = withheld.get(cam, 0) + n
            problems = [
                f"privacy: camera {cam}: pictures withheld ({withheld.get(cam, 0)} so far, for "
                f"{time.time() - self.since.get(cam, time.time()):.0f} s): {why}"
                for cam, why in sorted(self.problems.items())
            ]
            body = {"masked": dict(self.masked), "withheld": withheld, "problems": dict(self.problems)}
        return body, problems


class PrivacyCollector(Collector):
    """``edge_privacy_masked_total{camera}`` and ``edge_privacy_withheld_total{camera,reason}``."""

    def __init__(self, status: PrivacyStatus) -> None:
        self.status = status

    def collect(self) -> Iterator[CounterMetricFamily]:
        st = self.status
        masked = CounterMetricFamily(
            "edge_privacy_masked", "Pictures masked before leaving the device", labels=["camera"]
        )
        withheld = CounterMetricFamily(
            "edge_privacy_withheld",
            "Pictures not sent unmasked because a privacy model could not load (model) or failed (frame)",
            labels=["camera", "reason"],
        )
        with st._lock:
            for cam, n in sorted(st.masked.items()):
                masked.add_metric([cam], n)
            for (cam, reason), n in sorted(st.withheld.items()):
                withheld.add_metric([cam, reason], n)
        yield masked
        yield withheld
