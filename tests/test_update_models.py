"""Signed model updates with bad references against a device on a real mosquitto (issue 21
items 8 and 9): each is answered ``ok: false`` with a reason naming the field and the model, is
counted, and leaves the running config alone; then a good reference (pulled from the configured
mirror, sha256-checked, loaded by its backend) is applied and confirmed."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import yaml

from tests.fixtures.mqtt import Broker, MqttCollector, free_port
from tests.test_fleetops_update import Device, Operator, device_config, scrape, write_key

GOOD = "yolox-nano-coco"  # small ONNX detector (3.7 MB)
CORRUPT = "vehicle-detection-0200"  # its weights are truncated in this test's mirror


def mirror_with_a_corrupt_model(tmp_path: Path, shared_models: Path) -> Path:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / GOOD).symlink_to(shared_models / GOOD)
    bad = mirror / CORRUPT
    bad.mkdir()
    shutil.copy(shared_models / CORRUPT / f"{CORRUPT}.xml", bad)
    (bad / f"{CORRUPT}.bin").write_bytes((shared_models / CORRUPT / f"{CORRUPT}.bin").read_bytes()[:100_000])
    return mirror


def test_bad_model_references_are_refused_before_the_swap_and_a_good_one_is_applied(
    tmp_path: Path, broker: Broker, mqtt_collector: MqttCollector, shared_models: Path
) -> None:
    key = write_key(tmp_path / "update.pub")
    port = free_port()
    models = {"cache_dir": str(tmp_path / "cache"), "mirror": str(mirror_with_a_corrupt_model(tmp_path, shared_models))}
    path = tmp_path / "edge.yaml"
    v1 = yaml.safe_dump(device_config(tmp_path, broker, "rtsp://cam/gate", port, models=models))
    path.write_text(v1)
    unknown_in_config = device_config(tmp_path, broker, "rtsp://cam/gate", port, models=models)
    unknown_in_config["cameras"]["gate"]["detect"] = {"model": "no-such-detector"}
    good_sha = hashlib.sha256((shared_models / GOOD / "yolox_nano.onnx").read_bytes()).hexdigest()
    op = Operator(broker, mqtt_collector, key)
    bad = {
        "unknown": ({"ref": "no-such-model"}, ["model.ref: model 'no-such-model'", "unknown model"]),
        "wrong task": (
            {"ref": "mobilenet-v2-imagenet-quant"},
            ["model.ref: model 'mobilenet-v2-imagenet-quant' is a classify model", "needs a detect model"],
        ),
        "corrupt in the mirror": ({"ref": CORRUPT}, [f"model.ref: model '{CORRUPT}'", "sha256 mismatch"]),
        "wrong sha256": (
            {"ref": GOOD, "sha256": "ab" * 32},
            [f"model.ref: model '{GOOD}'", f"has sha256 {good_sha[:16]}", "not the signed abababab"],
        ),
        "cameras [[1]]": ({"ref": GOOD, "cameras": [[1]]}, ["model.cameras[0]: Input should be a valid string"]),
    }
    try:
        with Device(path):
            op.status(lambda s: s["state"] == "online")
            op.ready()
            for name, (model, expected) in bad.items():
                r = op.send(op.command(kind="model", model=model), timeout=60)
                assert r["ok"] is False, (name, r)
                assert all(part in r["error"] for part in expected), (name, r["error"])
                assert "\n" not in r["error"] and "Traceback" not in r["error"], (name, r["error"])
            r = op.send(op.command(kind="config", config=yaml.safe_dump(unknown_in_config)), timeout=60)
            assert r["ok"] is False and r["error"].startswith(
                "cameras.gate.detect.model: model 'no-such-detector': unknown model"
            ), r
            assert path.read_text() == v1  # nothing refused touched the running config
            text = scrape(port)
            assert f'edge_update_results_total{{result="invalid"}} {len(bad) + 1}.0' in text, text
            assert 'edge_update_results_total{result="applied"} 0.0' in text

            r = op.send(op.command(kind="model", model={"ref": GOOD, "sha256": good_sha}, version="m2"), timeout=120)
            assert r["ok"] and r["version"] == "m2", r
            s = op.status(lambda s: s["config_version"] == "m2" and s["update"] == "confirmed")
            assert s["model_version"] == f"{GOOD}@{good_sha}"
            assert yaml.safe_load(path.read_text())["cameras"]["gate"]["detect"]["model"] == GOOD
            assert (tmp_path / "cache" / GOOD / "yolox_nano.onnx").is_file()  # pulled from the mirror
    finally:
        op.close()
