"""Prometheus collector over a rule engine: read at scrape time, nothing kept twice."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from edge.rules.engine import RuleEngine


class RulesCollector:
    """``edge_anomalies_open{rule,severity}``, ``edge_visits_open``, ``edge_rule_errors_total{rule}``."""

    def __init__(self, engine: RuleEngine) -> None:
        self.engine = engine

    def describe(self) -> Iterator[Metric]:
        """Names only, so registering does not read the engine."""
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        """Current counts."""
        counts = self.engine.open_counts()
        anomalies, visits, errors = self._families()
        # configured rules at 0 as well, so dashboards and alerts see them before the first anomaly
        by_pair = {**dict.fromkeys(self.engine.rule_severities(), 0), **counts["anomalies"]}
        for (rule, severity), n in sorted(by_pair.items()):
            anomalies.add_metric([rule, severity], n)
        visits.add_metric([], counts["visits"])
        for rule, n in sorted(counts["errors"].items()):
            errors.add_metric([rule], n)
        yield from (anomalies, visits, errors)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily]:
        return (
            GaugeMetricFamily("edge_anomalies_open", "Open anomalies by rule, severity", labels=["rule", "severity"]),
            GaugeMetricFamily("edge_visits_open", "Open visits"),
            CounterMetricFamily("edge_rule_errors", "Rule failures at run time, by rule", labels=("rule",)),
        )
