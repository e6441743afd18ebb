"""``edge fleet``'s Prometheus metrics (``metrics.enabled``), served by the appliance's
:class:`edge.metrics.MetricsServer` on ``/metrics`` with ``/healthz``.

Ingest keeps plain counters (:class:`IngestStats`); a collector reads them at scrape time, so the
writer never touches Prometheus objects.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.fleet.validate import REASONS

KINDS = ("event", "snapshot", "status", "stats", "reply")


@dataclass
class IngestStats:
    """What one ingest worker has done (written by its writer thread only)."""

    accepted: Counter[str] = field(default_factory=Counter)  # kind -> messages stored/applied
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> messages dead-lettered
    stored: int = 0  # events that were new to the database
    write_retries: int = 0  # single-row writes retried after the database refused them
    rule_errors: int = 0  # events the fleet rule engine failed on (stored all the same)
    database_up: bool = True  # False while the writer waits for the database (messages unacknowledged)


class _IngestCollector(Collector):
    def __init__(self, ingest: Any) -> None:
        self.ingest = ingest

    def collect(self) -> list[Metric]:
        st: IngestStats = self.ingest.stats
        accepted = CounterMetricFamily(
            "edge_fleet_messages", "Messages ingest stored or applied, by kind", labels=["kind"]
        )
        for kind in KINDS:
            accepted.add_metric([kind], st.accepted[kind])
        rejected = CounterMetricFamily(
            "edge_fleet_rejected",
            "Messages refused at the door or by the database, dead-lettered and acknowledged, by reason",
            labels=["reason"],
        )
        for reason in REASONS:
            rejected.add_metric([reason], st.rejected[reason])
        out: list[Metric] = [accepted, rejected]
        for name, help_, value in (
            ("edge_fleet_events_stored", "Events new to the database", st.stored),
            ("edge_fleet_write_retries", "Single-row writes retried after the database refused them", st.write_retries),
            ("edge_fleet_rule_errors", "Events the fleet rule engine failed on (stored all the same)", st.rule_errors),
        ):
            c = CounterMetricFamily(name, help_)
            c.add_metric([], value)
            out.append(c)
        for name, help_, gauge in (
            ("edge_fleet_queue_depth", "Messages received and not yet written", self.ingest.queue_depth()),
            ("edge_fleet_mqtt_connected", "1 while connected to the broker", int(self.ingest.connected.is_set())),
            ("edge_fleet_database_up", "0 while the writer waits for the database", int(st.database_up)),
        ):
            g = GaugeMetricFamily(name, help_)
            g.add_metric([], gauge)
            out.append(g)
        return out


class FleetMetrics:
    """The fleet's registry; ``render()`` is what :class:`edge.metrics.MetricsServer` serves."""

    def __init__(self, ingest: Any) -> None:
        self.ingest = ingest
        self.registry = CollectorRegistry()
        self.registry.register(_IngestCollector(ingest))

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)

    def health(self) -> dict[str, Any]:
        """``/healthz``: ok while connected to the broker and the database takes writes."""
        problems = []
        if not self.ingest.connected.is_set():
            problems.append("not connected to the broker")
        if not self.ingest.stats.database_up:
            problems.append("database writes failing (messages wait unacknowledged)")
        return {"ok": not problems, "problems": problems}
