"""deploy/compose.yaml checked statically (no registry here): it parses, every host file it mounts
exists, and each service reads the very config files the other fleetops tests exercise."""

from __future__ import annotations

from pathlib import Path

import yaml

from edge.config import check_config, load_yaml
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def mounts(service: dict) -> dict[str, str]:
    """container path -> host path (bind mounts, relative to deploy/) or volume name."""
    out = {}
    for v in service.get("volumes", []):
        src, dst = v.split(":")[:2]
        out[dst] = src
    return out


def test_compose_parses_and_every_mounted_file_exists() -> None:
    c = compose()
    assert set(c["services"]) == {"mosquitto", "edge", "prometheus", "grafana"}
    named = set(c["volumes"])
    for name, svc in c["services"].items():
        for dst, src in mounts(svc).items():
            if src.startswith("."):
                assert (DEPLOY / src).exists(), f"{name}: {src} (mounted at {dst}) does not exist"
            else:
                assert src in named, f"{name}: volume {src} is not declared"
    assert (DEPLOY / c["services"]["edge"]["build"]["context"] / c["services"]["edge"]["build"]["dockerfile"]).is_file()


def test_each_service_uses_the_tested_config() -> None:
    c = compose()
    s = c["services"]
    # mosquitto: the config, ACL and bridge that tests/test_fleetops_broker.py runs
    m = mounts(s["mosquitto"])
    assert m["/mosquitto/config/mosquitto.conf"] == "./mosquitto/site.conf"
    assert m["/mosquitto/config/acl"] == "./mosquitto/acl"
    assert m["/mosquitto/config/conf.d"] == "./mosquitto/conf.d"
    assert s["mosquitto"]["command"][-1] == "/mosquitto/config/mosquitto.conf"
    site = (DEPLOY / "mosquitto" / "site.conf").read_text()
    assert "acl_file /mosquitto/config/acl" in site and "include_dir /mosquitto/config/conf.d" in site
    assert m["/mosquitto/certs"] == "pki"
    listener = int(next(ln.split()[1] for ln in site.splitlines() if ln.startswith("listener ")))
    assert f"{listener}:{listener}" in s["mosquitto"]["ports"]

    # prometheus: the config and rules that tests/test_fleetops_monitoring.py runs
    p = mounts(s["prometheus"])
    assert "--config.file=/etc/prometheus/prometheus.yml" in s["prometheus"]["command"]
    assert p["/etc/prometheus/prometheus.yml"] == "./prometheus/prometheus.yml"
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    for rule_file in prom["rule_files"]:  # relative to the config file's directory
        assert p[f"/etc/prometheus/{rule_file}"] == f"./prometheus/{rule_file}"
    target = prom["scrape_configs"][0]["static_configs"][0]

    # grafana: provisioning points at the prometheus service and the mounted dashboards
    g = mounts(s["grafana"])
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/edge.yaml").read_text())
    assert g[prov["providers"][0]["options"]["path"]] == "./grafana/dashboards"
    assert (DEPLOY / "grafana/dashboards/edge.json").is_file()

    # the appliance: its config validates, talks TLS to the broker service, is the scrape target
    e = mounts(s["edge"])
    assert e["/etc/edge"] == "./site" and e["/etc/edge/certs"] == "pki"
    cmd = s["edge"]["command"]
    cfg_file = DEPLOY / "site" / Path(cmd[cmd.index("--config") + 1]).relative_to("/etc/edge")
    result = check_config(cfg_file, no_env=True)
    assert result.unchecked == ["CAMERA_PASSWORD", "CAMERA_USER"]
    raw = load_yaml(cfg_file.read_text())
    assert raw["mqtt"]["host"] == "mosquitto" and raw["mqtt"]["port"] == listener
    assert all(raw["mqtt"][k].startswith("/etc/edge/certs/") for k in ("tls_ca", "tls_cert", "tls_key"))
    assert raw["mqtt"]["tls_cert"].endswith(f"/{raw['device_id']}.crt")  # CN = device id (ACL)
    assert target["targets"] == [f"edge:{raw['metrics']['port']}"] and raw["metrics"]["host"] == "0.0.0.0"
    assert target["labels"]["device"] == raw["device_id"]
    assert raw["update"]["enabled"] and raw["update"]["public_keys"][0].startswith("/etc/edge/certs/")
    assert set(s["edge"]["environment"]) == {"CAMERA_USER", "CAMERA_PASSWORD"}
