"""``edge replay VIDEO --filter privacy --out OUT.mp4`` and ``--annotate``: every frame through
the privacy filter, H.264 at the source frame rate, the walking man masked in each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.privacy import quality as Q
from tests.conftest import error_lines, need_exe
from tests.test_privacy import EMPTY, detail, frames

FIRST, COUNT = 750, 20  # a man walks in towards the table


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray], np.ndarray]:
    """A 2 s clip (10 fps) of the walking man, its frames and the room's empty background."""
    f = frames([*EMPTY, *range(FIRST, FIRST + COUNT)])
    path = tmp_path_factory.mktemp("clip") / "walk.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10, (768, 432))
    for i in range(FIRST, FIRST + COUNT):
        writer.write(f[i])
    writer.release()
    decoded = []
    cap = cv2.VideoCapture(str(path))
    while (got := cap.read())[0]:
        decoded.append(got[1])
    return path, decoded, Q.background([f[i] for i in EMPTY])


def probe(path: Path) -> list[str]:
    """codec, pixel format, frame rate and frame count of the first video stream."""
    out = subprocess.run(
        [need_exe("ffprobe"), "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=codec_name,pix_fmt,r_frame_rate,nb_read_frames", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return out.split(",")


def person_detail(out: Path, source: list[np.ndarray], bg: np.ndarray, diff: bool = False) -> list[float]:
    """Per frame with a person: how much of the person's fine detail is left in ``out`` (the
    correlation of its detail with the source's, inside the reference mask; ~0 = gone), or
    with ``diff`` the mean absolute difference there (grey levels)."""
    cap = cv2.VideoCapture(str(out))
    left = []
    for src in source:
        ok, img = cap.read()
        assert ok
        ref = cv2.erode(Q.reference_mask(src, bg).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        if ref.sum() >= 500:
            if diff:
                left.append(float(np.abs(img.astype(int) - src.astype(int))[ref].mean()))
            else:
                left.append(float(np.corrcoef(detail(src)[ref], detail(img)[ref])[0, 1]))
    return left


@pytest.mark.usefixtures("model_env")
def test_filter_privacy_writes_every_frame_masked_at_the_source_rate(
    clip: tuple[Path, list[np.ndarray], np.ndarray], tmp_path: Path
) -> None:
    path, source, bg = clip
    out = tmp_path / "private.mp4"
    cmd = [sys.executable, "-m", "edge", "replay", str(path), "--filter", "privacy", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"filtered {COUNT} frames (privacy)" in proc.stderr and "at 10 fps" in proc.stderr
    assert probe(out) == ["h264", "yuv420p", "10/1", str(COUNT)]
    left = person_detail(out, source, bg)
    assert len(left) >= COUNT - 2 and max(left) < 0.3, left  # blurred in every frame


@pytest.mark.usefixtures("model_env")
def test_annotate_masks_people_by_default_and_filter_none_does_not(
    clip: tuple[Path, list[np.ndarray], np.ndarray], tmp_path: Path
) -> None:
    path, source, bg = clip
    for name, extra in (("masked", []), ("plain", ["--filter", "none"])):
        out = tmp_path / f"{name}.mp4"
        cmd = [sys.executable, "-m", "edge", "replay", str(path), "-q", "--annotate", str(out), *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        if name == "masked":
            left = person_detail(out, source, bg)
            assert max(left) < 0.3, left
        else:  # the person as the source shows him, give or take H.264
            assert max(person_detail(out, source, bg, diff=True)) < 6


def test_unknown_filter_is_one_clear_line(clip: tuple[Path, list[np.ndarray], np.ndarray], tmp_path: Path) -> None:
    path = clip[0]
    cmd = [sys.executable, "-m", "edge", "replay", str(path), "--filter", "sepia", "--out", str(tmp_path / "o.mp4")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert error_lines(proc.stderr) == ["edge: error: unknown filter 'sepia'; known filters: none, privacy"]
