"""Prometheus collector over a command handler: its outcome counters, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from edge.commands.handler import OUTCOMES, CommandHandler


class CommandsCollector:
    """``edge_commands_total{outcome}`` (ok, invalid, unknown, oversized, unauthorized, failed, busy)."""

    def __init__(self, handler: CommandHandler) -> None:
        self.handler = handler

    def describe(self) -> Iterator[Metric]:
        """Names only."""
        yield CounterMetricFamily("edge_commands", "Operator commands received, by outcome", labels=["outcome"])

    def collect(self) -> Iterator[Metric]:
        """Current counts (every outcome, zeros included, so alerts see them from the start)."""
        family = CounterMetricFamily("edge_commands", "Operator commands received, by outcome", labels=["outcome"])
        counts = self.handler.counts()
        for outcome in OUTCOMES:
            family.add_metric([outcome], counts[outcome])
        yield family
