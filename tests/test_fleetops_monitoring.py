"""Fleet monitoring: alert rules unit-tested with promtool, and every dashboard panel query and
alert expression evaluated by a real Prometheus scraping a live ``edge.app.run``."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

import edge.metrics
from edge.app import run
from edge.config import AppConfig, CameraConfig
from tests.conftest import ROOT, need_exe
from tests.fixtures.mqtt import Broker, free_port
from tests.test_app import FakePipeline, FakeReader, FakeStats, config

PROM_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "edge.json"
RATE_WINDOW = "10s"  # what $__rate_interval becomes (scrape interval 1 s)

# Panel queries allowed to return nothing in this test, and why.
EXPECTED_EMPTY_PANELS: dict[str, str] = {
    "edge_line_crossings_total": "the fake pipeline has no counting line (series appear with the first crossing)",
}
# Alerts that must not fire on this test's device (one healthy camera, one that never connects),
# and why; every metric they read must still exist (checked separately), so none is vacuous.
EXPECTED_EMPTY_ALERTS: dict[str, str] = {
    "EdgeDeviceDown": "the device is scraped fine",
    "EdgeCameraStalled": "the live camera delivers frames, nothing stalls",
    "EdgeOutboxBacklogGrowing": "the broker is up, the outbox drains",
    "EdgeOutboxDropping": "the outbox never fills and its disk has room (tests/test_outbox_disk_full.py fills one)",
    "EdgeOutboxUnwritable": "the outbox disk has room",
    "EdgeMqttDisconnected": "the broker is up",
    "EdgeAnomaliesOpen": "no rule raises in a few seconds of fake traffic (the rule's series is 0)",
    "EdgeInferenceOverBudget": "fake inference takes 1 ms",
    "EdgeFramesDropped": "fake cameras drop nothing",
    "EdgeDeviceHot": "the fake thermal zone reads 47 C",
    "EdgeUpdateRolledBack": "no update was rolled back",
}
# Metric names an alert or panel reads that may be missing from the scrape, and why.
ABSENT_OK = {
    "ALERTS": "only exists while an alert is pending or firing",
}


def test_alert_rules_promtool_unit_tests() -> None:
    promtool = need_exe("promtool")
    check = subprocess.run([promtool, "check", "rules", "edge.rules.yml"], cwd=PROM_DIR, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    res = subprocess.run([promtool, "test", "rules", "tests.yml"], cwd=PROM_DIR, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    # every alert has at least one unit test
    tested = set(re.findall(r"alertname: (\w+)", (PROM_DIR / "tests.yml").read_text()))
    rules = yaml.safe_load((PROM_DIR / "edge.rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert alerts <= tested, f"alerts without a promtool test: {alerts - tested}"


def test_dashboard_structure() -> None:
    dash = json.loads(DASHBOARD.read_text())
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names == ["datasource", "device", "camera"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["targets"] and all(t["expr"] for t in p["targets"]), p["title"]
    prov = ROOT / "deploy" / "grafana" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "prometheus.yaml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    dp = yaml.safe_load((prov / "dashboards" / "edge.yaml").read_text())
    assert dp["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, expr with template variables substituted) for every panel target."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            expr = t["expr"].replace("$__rate_interval", RATE_WINDOW)
            expr = expr.replace("$device", "dev1").replace("$camera", ".*")
            assert "$" not in expr, expr
            out.append((p["title"], expr))
    return out


def alert_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load((PROM_DIR / "edge.rules.yml").read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (identifiers followed by ``{`` or ``[`` or used bare)."""
    words = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=[{\[)\s]|$)", expr))
    return {w for w in words if w.startswith(("edge_", "up", "ALERTS")) and w not in ("up",) or w == "up"}


class Prom:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        try:
            data = self.get("/api/v1/query", query=expr)
        except urllib.error.HTTPError as err:
            raise AssertionError(f"{expr}: {err.read().decode()}") from None
        return list(data["result"])


class PipeStats:
    frames_in = 0
    frames_inferred = 0
    active_tracks = 1


class CountingPipeline(FakePipeline):
    """The fake pipeline plus the ``stats`` a real one keeps (pipeline panels need them)."""

    def __init__(self, camera: str, cfg: CameraConfig, app: AppConfig) -> None:
        super().__init__(camera, cfg, app)
        self.stats = PipeStats()

    def process(self, frame: Any) -> list[Any]:
        self.stats.frames_in += 1
        self.stats.frames_inferred += 1
        return super().process(frame)


class DeadReader:
    """A camera that never connects (edge_camera_up 0)."""

    def __init__(self) -> None:
        self.stats = FakeStats()
        self._stop = threading.Event()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self._stop.set()

    def __iter__(self) -> Any:
        self._stop.wait()
        return iter(())


def test_live_prometheus_evaluates_every_panel_and_alert(
    tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    prometheus = need_exe("prometheus")
    monkeypatch.setattr(edge.metrics, "read_temperatures", lambda _d: [("thermal_zone0", "x86_pkg_temp", 47.0)])
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pub = Ed25519PrivateKey.generate().public_key()
    (tmp_path / "update.pub").write_bytes(
        pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    cfg = config(
        tmp_path,
        {"gate": "rtsp://cam/gate", "dead": "rtsp://cam/dead"},
        mqtt={"host": broker.host, "port": broker.port, "stats_interval": 1},
        rules={"rules": [{"id": "overstay", "kind": "overstay", "max_seconds": 7200, "severity": "critical"}]},
        update={"enabled": True, "public_keys": [str(tmp_path / "update.pub")]},
    )
    cfg_path = tmp_path / "edge.yaml"  # updates on: edge_update_* metrics are exported
    cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True, exclude_none=True)))

    def camera_factory(name: str, cc: CameraConfig) -> Any:
        return FakeReader(name, None, 0.05) if name == "gate" else DeadReader()

    def pipeline_factory(name: str, cc: CameraConfig, app: AppConfig) -> FakePipeline:
        return CountingPipeline(name, cc, app)

    stop = threading.Event()
    t = threading.Thread(
        target=run,
        args=(cfg, stop),
        kwargs={"camera_factory": camera_factory, "pipeline_factory": pipeline_factory, "config_path": str(cfg_path)},
    )
    t.start()
    proc = None
    try:
        # the deployed Prometheus config, pointed at this appliance and scraping every second
        pconf = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
        pconf["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        pconf["rule_files"] = [str(PROM_DIR / f) for f in pconf["rule_files"]]
        job = pconf["scrape_configs"][0]
        job["static_configs"][0]["targets"] = [f"127.0.0.1:{cfg.metrics.port}"]
        job["static_configs"][0]["labels"]["device"] = "dev1"
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(pconf))
        port = free_port()
        proc = subprocess.Popen(
            [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "prometheus.log", "wb"),  # noqa: SIM115
        )
        prom = Prom(port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # up, and enough samples for rate() over RATE_WINDOW
            try:
                if prom.query('count_over_time(up{job="edge"}[10s]) >= 6') and prom.query(
                    f"rate(edge_mqtt_publish_seconds_count[{RATE_WINDOW}]) > 0"
                ):
                    break
            except (OSError, AssertionError):
                pass
            time.sleep(0.5)
        else:
            pytest.fail("Prometheus never scraped the appliance: " + (tmp_path / "prometheus.log").read_text()[-2000:])

        present = {r["metric"]["__name__"] for r in prom.query('{job="edge"}')}
        problems = []
        for title, expr in panel_queries():
            result = prom.query(expr)
            allowed = [m for m in EXPECTED_EMPTY_PANELS if m in expr]
            if not result and not (allowed and not present & set(allowed)):
                problems.append(f"panel {title!r}: no data for {expr}")
        fired = {}
        for name, expr in alert_exprs():
            fired[name] = prom.query(expr)
            for metric in metric_names(expr):
                if metric not in present and metric not in ABSENT_OK and metric != "up":
                    problems.append(f"alert {name}: reads {metric}, which the appliance does not export")
        for name, result in fired.items():
            if name in EXPECTED_EMPTY_ALERTS:
                if result:
                    problems.append(f"alert {name} unexpectedly matches: {result}")
            elif not result:
                problems.append(f"alert {name}: expected data")
        assert [x["metric"].get("camera") for x in fired["EdgeCameraDown"]] == ["dead"]
        # Prometheus itself evaluates every rule without error
        groups = prom.get("/api/v1/rules")["groups"]
        for g in groups:
            for r in g["rules"]:
                if r["health"] not in ("ok", "unknown"):
                    problems.append(f"rule {r['name']}: {r['health']} {r.get('lastError')}")
        assert not problems, "\n".join(problems)
    finally:
        stop.set()
        t.join(30)
        if proc is not None:
            proc.terminate()
            proc.wait(10)
