"""``edge_update_info{config_version,config_sha256,model_version,update}`` (always 1) and
``edge_update_results_total{result}`` (every result at 0 from the start)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from edge.update.manager import RESULTS, UpdateManager


class UpdateCollector:
    """Read at scrape time from the manager (which outlives ``run()`` restarts)."""

    def __init__(self, manager: UpdateManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        """Current version and result counts."""
        info = self.manager.info()
        labels = ["config_version", "config_sha256", "model_version", "update"]
        g = GaugeMetricFamily("edge_update_info", "Config/model version in use and update phase", labels=labels)
        g.add_metric([str(info[k]) for k in labels], 1.0)
        yield g
        c = CounterMetricFamily("edge_update_results", "Remote update results", labels=["result"])
        for result in RESULTS:
            c.add_metric([result], float(self.manager.counts[result]))
        yield c
