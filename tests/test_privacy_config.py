"""``edge config check`` on a camera's privacy models, as a user runs it: a model name the
registry does not know, or a model that cannot find people / segment them, is rejected with one
line naming the field (not a snapshot withheld at run time)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CONFIG = """\
device_id: d1
cameras:
  gate:
    url: rtsp://cam/gate
    privacy: {privacy}
"""


def check(tmp_path: Path, privacy: str) -> subprocess.CompletedProcess[str]:
    f = tmp_path / "edge.yaml"
    f.write_text(CONFIG.format(privacy=privacy))
    cmd = [sys.executable, "-m", "edge", "config", "check", str(f)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_unknown_privacy_models_are_rejected_naming_the_field(tmp_path: Path) -> None:
    proc = check(tmp_path, "{detector: yolox-nano, segmenter: selfie-seg}")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    det = [x.strip() for x in lines if x.strip().startswith("cameras.gate.privacy.detector:")]
    seg = [x.strip() for x in lines if x.strip().startswith("cameras.gate.privacy.segmenter:")]
    assert len(det) == 1 and "unknown model 'yolox-nano'; use one of: " in det[0], lines
    assert "person-vehicle-bike-detection-crossroad-0078" in det[0] and "yolox-nano-coco" in det[0]
    assert len(seg) == 1 and "unknown model 'selfie-seg'" in seg[0] and "mediapipe-selfie-segmentation" in seg[0]


def test_models_that_cannot_do_the_job_are_rejected(tmp_path: Path) -> None:
    # a vehicle detector finds no people; a detector is not a segmentation model
    proc = check(tmp_path, "{detector: vehicle-detection-0200, segmenter: yolox-nano-coco}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cameras.gate.privacy.detector: model 'vehicle-detection-0200' has no person label" in proc.stderr
    assert "cameras.gate.privacy.segmenter: model 'yolox-nano-coco' is a detect model, not a segmentation model" in (
        proc.stderr
    )


def test_the_documented_privacy_models_pass(tmp_path: Path) -> None:
    for detector in ("person-vehicle-bike-detection-crossroad-0078", "yolox-nano-coco"):
        proc = check(tmp_path, f"{{detector: {detector}, segmenter: mediapipe-selfie-segmentation}}")
        assert proc.returncode == 0, proc.stderr


def test_the_default_privacy_models_can_do_the_job() -> None:
    """The check reads only names a config writes; the defaults themselves must pass it."""
    from edge.config.schema.privacy import PrivacyConfig
    from edge.privacy.check import privacy_problems
    from edge.registry import list_manifests

    d = PrivacyConfig()
    labels = {m.name: m.labels for m in list_manifests()}
    written = PrivacyConfig(detector=d.detector, segmenter=d.segmenter)
    assert privacy_problems("gate", written, lambda name: labels.get(name)) == []
