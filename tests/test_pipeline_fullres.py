"""Plates from full-resolution frames: detection runs at ``detect.width`` (768 px), the plate is
cropped from the camera's native frame, so a plate too small to read in the 768 px frame is read.

The shared data has no high-resolution video with a readable plate (car-detection.mp4 is
768x432 top-down, traffic_frames.mp4 960x540 with distant cars), so the clip is made at test
time with ffmpeg from a real OpenALPR photo: the photo unscaled in the middle of a 3840x2160
(4K) frame with a mid-gray surround, H.264 like a camera stream. The car's pixels are the
photo's; at 768 px the whole frame is scaled by 0.2 and its plate becomes unreadable.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from edge.config import config_for_video
from edge.events.schema import Event
from edge.replay import replay
from edge.sources.reader import native_frames, open_camera
from tests.conftest import need_exe

PHOTO, PLATE = "AYO9034", "AYO9034"  # openalpr/br/AYO9034.jpg, 1280x720
NATIVE = (3840, 2160)


@pytest.fixture(scope="module")
def uhd_clip(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s at 5 fps of the photo inside a 4K frame (see the module docstring)."""
    ffmpeg = need_exe("ffmpeg")
    photo = shared_data / "openalpr" / "br" / f"{PHOTO}.jpg"
    out = tmp_path_factory.mktemp("uhd") / "uhd.mp4"
    w, h = NATIVE
    cmd = [ffmpeg, "-v", "error", "-loop", "1", "-i", str(photo), "-t", "2", "-r", "5"]
    cmd += ["-vf", f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=0x767676", "-c:v", "libx264", "-crf", "18"]
    cmd += ["-preset", "veryfast", "-pix_fmt", "yuv420p", str(out)]
    subprocess.run(cmd, check=True, timeout=120)
    return out


def run(video: Path, full_resolution: bool) -> list[dict]:
    app = config_for_video(
        str(video),
        detect={"fps": 5, "width": 768},
        tracker={"min_hits": 2},
        motion={"enabled": False},
        plates={"full_resolution": full_resolution},
    )
    events: list[Event] = []
    replay(str(video), app, "camera", on_event=events.append, show_progress=False, start_time=0.0)
    return [json.loads(e.to_json()) for e in events]


@pytest.mark.usefixtures("model_env")
def test_plate_unreadable_at_detect_size_is_read_from_the_full_resolution_frame(uhd_clip: Path) -> None:
    detect_size = {e["attrs"].get("plate") for e in run(uhd_clip, full_resolution=False) if e["type"] == "plate"}
    full = [e for e in run(uhd_clip, full_resolution=True) if e["type"] == "plate"]
    assert PLATE not in detect_size, detect_size  # too small in the 768 px frame
    assert full and full[-1]["attrs"]["plate"] == PLATE, full
    # the plate's box maps back onto the whole frame: inside the photo, the middle third of the 4K frame
    x0, y0, x1, y1 = full[-1]["box"]
    assert 1 / 3 < x0 < x1 < 2 / 3 and 1 / 3 < y0 < y1 < 2 / 3, full[-1]["box"]


def test_only_cameras_that_crop_plates_get_native_frames(uhd_clip: Path) -> None:
    def camera(**extra: object):  # type: ignore[no-untyped-def]
        return config_for_video(str(uhd_clip), realtime=False, detect={"width": 768}, **extra).cameras["camera"]

    plates, no_plates = camera(plates={}), camera()
    assert native_frames(plates) and not native_frames(no_plates)
    assert not native_frames(camera(plates={"full_resolution": False}))
    assert not native_frames(camera(plates={"enabled": False}))
    for cfg, size in ((plates, NATIVE), (no_plates, (768, 432))):
        reader = open_camera("camera", cfg)
        reader.start()
        try:
            frame = reader.read(timeout=10)
        finally:
            reader.stop()
        assert frame is not None and frame.size == size
