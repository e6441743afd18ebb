"""The ``edge`` command as a user runs it: demo, and bad models reported in one line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import error_lines

ROOT = Path(__file__).resolve().parent.parent


def edge(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


@pytest.mark.usefixtures("model_env")
def test_demo_prints_events_for_every_vehicle(car_video: Path) -> None:
    proc = edge("demo", "--fast", "--json", "--video", str(car_video))
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    tracks = [e for e in events if e["type"] == "track"]
    assert {e["phase"] for e in tracks} == {"start", "end"}
    assert len({e["track"] for e in tracks}) == 4
    # the demo's counting line: every car crosses it once; the two driving in open visits
    assert len([e for e in events if e["type"] == "line"]) == 4
    assert len([e for e in events if e["type"] == "visit" and e["phase"] == "start"]) == 2
    human = edge("demo", "--fast", "--video", str(car_video))
    assert human.stdout.count(" start (") == 4 and "car #1 end after" in human.stdout


def _manifest_dir(
    tmp_path: Path, model_bytes: bytes, extra_files: dict[str, bytes] | None = None, **manifest: object
) -> tuple[Path, Path]:
    """A models/ dir with one manifest whose files (in a tmp mirror) have matching sha256s."""
    mirror = tmp_path / "mirror" / "broken-detector"
    mirror.mkdir(parents=True)
    files = {"model.onnx": model_bytes, **(extra_files or {})}
    for name, data in files.items():
        (mirror / name).write_bytes(data)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "broken-detector.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "broken-detector",
                "task": "detect",
                "format": "onnx",
                "backends": ["onnx"],
                "entry": "model.onnx",
                "licence": "test",
                "files": [
                    {
                        "path": name,
                        "url": f"https://example.invalid/{name}",
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                    for name, data in files.items()
                ],
                "input": {"size": [416, 416]},
                "head": {"type": "yolox"},
                **manifest,
            }
        )
    )
    return manifests, tmp_path / "mirror"


def _replay_model(tmp_path: Path, video: Path, manifests: Path, mirror: Path) -> subprocess.CompletedProcess[str]:
    return edge(
        "replay",
        str(video),
        "--model",
        "broken-detector",
        "--events-out",
        str(tmp_path / "e.jsonl"),
        env={
            "EDGE_MODELS_DIR": str(manifests),
            "EDGE_MODEL_MIRROR": str(mirror),
            "EDGE_MODEL_CACHE": str(tmp_path / "cache"),
        },
    )


@pytest.mark.parametrize("cut", [0.5, 0.001], ids=["truncated", "corrupt"])
def test_truncated_or_corrupt_model_is_one_clear_line(
    tmp_path: Path, shared_models: Path, car_video: Path, cut: float
) -> None:
    data = (shared_models / "yolox-nano-coco" / "yolox_nano.onnx").read_bytes()
    manifests, mirror = _manifest_dir(tmp_path, data[: int(len(data) * cut)])
    proc = _replay_model(tmp_path, car_video, manifests, mirror)
    assert proc.returncode == 2
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "cannot load model" in lines[0] and "model.onnx" in lines[0], proc.stderr


def test_labels_file_that_is_not_utf8_is_one_clear_line(tmp_path: Path, shared_models: Path, car_video: Path) -> None:
    data = (shared_models / "yolox-nano-coco" / "yolox_nano.onnx").read_bytes()
    manifests, mirror = _manifest_dir(
        tmp_path, data, {"labels.txt": "car\nvoiture\n".encode("latin-1") + b"v\xe9lo\n"}, labels_file="labels.txt"
    )
    proc = _replay_model(tmp_path, car_video, manifests, mirror)
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc.stderr) == [
        f"edge: error: labels file {tmp_path / 'cache' / 'broken-detector' / 'labels.txt'} of model broken-detector "
        "is not UTF-8 text: invalid continuation byte at byte 13"
    ]


def test_detector_with_an_unknown_head_fails_at_load_not_per_frame(
    tmp_path: Path, shared_models: Path, car_video: Path
) -> None:
    """`edge replay --model automl-traffic-lstm-ssd` (head lstm_ssd, not implemented yet) logged a
    traceback per frame and exited 0 with no events; the model must be refused when it loads."""
    data = (shared_models / "yolox-nano-coco" / "yolox_nano.onnx").read_bytes()
    manifests, mirror = _manifest_dir(tmp_path, data, head={"type": "no_such_head"})
    config = tmp_path / "edge.yaml"  # the detector alone: nothing else fails first
    config.write_text(
        f"cameras:\n  cam:\n    url: {car_video}\n    detect: {{model: broken-detector, attributes_model: null}}\n"
    )
    proc = edge(
        "replay",
        str(car_video),
        "--config",
        str(config),
        "--events-out",
        str(tmp_path / "e.jsonl"),
        env={
            "EDGE_MODELS_DIR": str(manifests),
            "EDGE_MODEL_MIRROR": str(mirror),
            "EDGE_MODEL_CACHE": str(tmp_path / "cache"),
        },
    )
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith(
        "edge: error: model broken-detector: output head 'no_such_head' is not supported"
    ), proc.stderr
    assert not (tmp_path / "cache" / "broken-detector" / "model.onnx").exists()  # refused before the pull
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("kind", ["Yolox", "yolox; rm -rf /", ["yolox"]])
def test_manifest_head_type_must_be_a_plain_identifier(tmp_path: Path, kind: object) -> None:
    manifests, _ = _manifest_dir(tmp_path, b"x", head={"type": kind})
    proc = edge("models", "list", env={"EDGE_MODELS_DIR": str(manifests)})
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"edge: error: {manifests / 'broken-detector.yaml'}: invalid manifest: head: ")
    assert "head.type must be a plain identifier" in proc.stderr


@pytest.mark.usefixtures("model_env")
def test_plates_bench_prints_a_table_per_folder(tmp_path: Path, shared_data: Path) -> None:
    folder = tmp_path / "mini"
    folder.mkdir()
    for name in ("eu3", "eu5", "eu10"):
        for ext in ("jpg", "txt"):
            (folder / f"{name}.{ext}").write_bytes((shared_data / "openalpr" / "eu" / f"{name}.{ext}").read_bytes())
    proc = edge("plates", "bench", str(folder), "--regions", "eu")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[1]: line.split() for line in proc.stdout.splitlines() if line.startswith("mini ")}
    assert set(rows) == {"baseline", "none", "eu"}
    assert all(r[2] == "3" for r in rows.values())  # three images scored in every mode
    # all three read right with EU formats (eu5 is labelled OYO9FEU; the UK plate says OY09FEU)
    assert rows["eu"][5] == "100.0%"


@pytest.mark.usefixtures("model_env")
def test_run_exits_non_zero_when_a_camera_worker_dies(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 7: `reconnect.initial_delay: .inf` killed the camera thread (OverflowError in a wait)
    and `edge run` then exited 0, "all sources finished", so systemd did not restart it. The config
    now refuses it; here it is forced past validation to stand for any bug in the camera thread."""
    from edge.app import EXIT_CAMERA_CRASHED, run
    from edge.config import parse_config
    from tests.fixtures.mqtt import free_port

    app = parse_config(
        {
            "cameras": {
                "gate": {
                    "url": f"rtsp://127.0.0.1:{free_port()}/nothing-listens",  # real reader, refused at once
                    "detect": {"attributes_model": None},
                    "reconnect": {"open_timeout": 2},
                }
            },
            "outbox": {"path": str(tmp_path / "state.db")},
            "outputs": {"jsonl": str(tmp_path / "events.jsonl")},
            "metrics": {"enabled": False},
        }
    )
    cam = app.cameras["gate"]
    bad = cam.reconnect.model_copy(update={"initial_delay": float("inf"), "max_delay": float("inf")})
    app = app.model_copy(update={"cameras": {"gate": cam.model_copy(update={"reconnect": bad})}})
    t0 = time.monotonic()
    assert run(app) == EXIT_CAMERA_CRASHED != 0
    assert time.monotonic() - t0 < 60
    assert "camera gate: supervisor crashed" in caplog.text
    assert "all sources finished" not in caplog.text


@pytest.mark.usefixtures("model_env")
def test_run_says_what_it_runs_on_start(tmp_path: Path, car_video: Path) -> None:
    """Issue 20: `edge run` printed nothing on start. Its first stderr lines name the cameras
    (passwords masked, also of a disabled camera), the models, where events go and the /metrics
    URL, which answers."""
    import signal
    import urllib.request

    from tests.fixtures.mqtt import free_port

    port = free_port()
    cfg = {
        "device_id": "gate-box",
        "cameras": {
            "gate": {"url": str(car_video), "realtime": True},
            "yard": {"url": "rtsp://viewer:S3cr3t-Pw@cam.local/live", "enabled": False},
        },
        "outbox": {"path": str(tmp_path / "state.db")},
        "outputs": {"jsonl": str(tmp_path / "events.jsonl")},
        "metrics": {"port": port},
    }
    (tmp_path / "edge.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--config", str(tmp_path / "edge.yaml")],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("metrics:" in ln for ln in lines):
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
        text = "\n".join(lines)
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - a loopback URL built here
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    summary = [ln for ln in lines if ln.startswith(("edge: device", "  "))]
    assert summary[0] == "edge: device gate-box, 1 of 2 camera(s)", text
    assert f"  camera gate: {car_video}" in summary
    assert "  camera yard: rtsp://***@cam.local/live (disabled)" in summary
    assert any(ln.startswith("  models: vehicle-detection-0200") for ln in summary), text
    assert f"  events: JSON lines {tmp_path / 'events.jsonl'}" in summary
    assert f"  metrics: {url}, health /healthz" in summary
    assert "S3cr3t" not in text + rest and "Traceback" not in text + rest


# NNCF with and without convert's quiet mode, in a fresh interpreter: NNCF installs its stdout
# handler on import, and draws its progress bars on rich's global console.
_NNCF_QUIET = """
from nncf.common.logging import nncf_logger
from nncf.common.logging.track_progress import track
from convert.nncf_output import quiet_nncf
with quiet_nncf():
    nncf_logger.info("INSIDE-INFO")
    nncf_logger.warning("INSIDE-WARNING")
    for _ in track(range(3), description="INSIDE-BAR"):
        pass
nncf_logger.info("AFTER-INFO")
for _ in track(range(3), description="AFTER-BAR"):
    pass
"""


def test_quiet_convert_keeps_nncf_info_and_bars_off_stdout() -> None:
    """Issue 20: NNCF's INFO lines and progress bars reached stdout during a first-pull INT8 build
    (`edge convert --quiet`, which the registry build passes unless -v). Quiet: no INFO line, no
    bar, warnings on stderr; NNCF's own settings come back afterwards (plain `edge convert`)."""
    import importlib.util

    from tests.conftest import need

    need(importlib.util.find_spec("nncf") is not None, "nncf (the [convert] extra)")
    proc = subprocess.run([sys.executable, "-c", _NNCF_QUIET], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "INSIDE" not in proc.stdout and "INSIDE-INFO" not in proc.stderr and "INSIDE-BAR" not in proc.stderr
    assert "INSIDE-WARNING" in proc.stderr
    assert "INFO:nncf:AFTER-INFO" in proc.stdout and "AFTER-BAR" in proc.stdout
    from convert.cli import build_parser

    assert build_parser().parse_args(["m", "--to", "openvino-int8", "-q"]).quiet


def test_convert_help_names_every_command_in_plain_text() -> None:
    """Issue 20: `edge convert --help` never mentioned train-classifier, and its help showed raw
    reST backticks."""
    main = edge("convert", "--help", timeout=120)
    assert main.returncode == 0, main.stderr
    assert "edge convert train-classifier DATA" in main.stdout and "edge convert dequantize-tflite MODEL" in main.stdout
    assert "train a whole-frame classifier" in main.stdout and "--to TARGET" in main.stdout
    helps = [main.stdout]
    for sub in ("train-classifier", "dequantize-tflite"):
        proc = edge("convert", sub, "--help", timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith(f"usage: edge convert {sub}"), proc.stderr
        helps.append(proc.stdout)
    for text in helps:
        assert "`" not in text and ":func:" not in text, text
