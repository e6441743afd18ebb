"""The annotated video of ``edge replay --annotate``: every source frame, with the boxes of the
latest inferred frame, zones (with occupancy), counting lines (arrow = their ``in`` way), track
paths and labels (id, colour, type with its confidence, plate); unconfirmed detections dashed,
plus a legend.
Each frame first goes through a frame filter (``edge replay`` passes the camera's privacy
filter, edge.privacy: people masked before anything is drawn).

Written as H.264 MP4 (browser-playable) through a system ``ffmpeg``; without one, OpenCV's
MPEG-4 Part 2 writer is used and a warning says the file may not play in browsers.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config import CameraConfig
from edge.errors import SourceError
from edge.pipeline.events import describe
from edge.tracking import Track
from edge.types import Detections

log = logging.getLogger("edge.annotate")

_PALETTE = [
    (56, 56, 255),
    (151, 157, 255),
    (31, 112, 255),
    (29, 178, 255),
    (49, 210, 207),
    (10, 249, 72),
    (23, 204, 146),
    (134, 219, 61),
    (52, 147, 26),
    (187, 212, 0),
    (168, 153, 44),
    (255, 194, 0),
]
_GREY = (170, 170, 170)
_LINE = (0, 215, 255)  # counting lines: amber
_ZONE = (255, 160, 40)  # zones: light blue
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_ARROWS = {"up": (0.0, -1.0), "down": (0.0, 1.0), "left": (-1.0, 0.0), "right": (1.0, 0.0)}


@dataclass(frozen=True)
class TrackMark:
    """What is drawn for one confirmed track."""

    id: int
    box: tuple[float, float, float, float]
    text: str
    path: list[tuple[float, float]]


@dataclass
class Overlay:
    """A snapshot of what to draw, taken after an inferred frame (tracks change afterwards)."""

    tracks: list[TrackMark] = field(default_factory=list)
    unconfirmed: list[tuple[float, float, float, float]] = field(default_factory=list)
    occupancy: dict[str, int] = field(default_factory=dict)


def snapshot(dets: Detections, tracks: list[Track], occupancy: dict[str, int] | None = None) -> Overlay:
    """The overlay of the latest inferred frame: confirmed tracks matched in it, the other detections."""
    out = Overlay(occupancy=dict(occupancy or {}))
    ids = dets.tracker_id if dets.tracker_id is not None else np.full(len(dets), -1)
    for box, tid in zip(dets.xyxy, ids):
        if tid < 0:
            out.unconfirmed.append(_box(box))
    for t in tracks:
        if not t.confirmed or t.last_det < 0 or t.measured is None:
            continue
        path = [(x, y) for _, x, y in t.state.trajectory[-200:]]
        out.tracks.append(TrackMark(t.id, _box(t.measured), track_label(t), path))
    return out


def track_label(t: Track) -> str:
    """A track's label as events publish it: ``#id colour type confidence plate``, e.g.
    ``#7 red car 0.82``; ``unknown`` when the vote is not sure enough, the detector's label
    when nothing voted a type yet."""
    attrs = describe(t)
    kind = attrs.get("type") or t.label
    if "type_confidence" in attrs:
        kind = f"{kind} {attrs['type_confidence']:.2f}"
    words = [f"#{t.id}", attrs.get("color", ""), kind, attrs.get("plate", "")]
    return " ".join(w for w in words if w)


def draw(image: np.ndarray, overlay: Overlay, cfg: CameraConfig, pos: float | None = None) -> np.ndarray:
    """A copy of ``image`` with zones, lines, the overlay's tracks and detections, and a legend."""
    out = image.copy()
    h, w = out.shape[:2]
    _draw_zones(out, cfg, overlay.occupancy)
    _draw_lines(out, cfg)
    for box in overlay.unconfirmed:
        x0, y0, x1, y1 = _px(box, w, h)
        _dashed_rect(out, (x0, y0), (x1, y1), _GREY)
    for mark in overlay.tracks:
        colour = _PALETTE[mark.id % len(_PALETTE)]
        if len(mark.path) > 1:
            pts = np.array([(x * w, y * h) for x, y in mark.path], np.int32).reshape(-1, 1, 2)
            cv2.polylines(out, [pts], False, colour, 1, cv2.LINE_AA)
        x0, y0, x1, y1 = _px(mark.box, w, h)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 2)
        _label(out, mark.text, (x0, max(y0, 16)), colour)
    _legend(out, pos)
    return out


def _draw_zones(out: np.ndarray, cfg: CameraConfig, occupancy: dict[str, int]) -> None:
    h, w = out.shape[:2]
    if not cfg.zones:
        return
    layer = out.copy()
    for z in cfg.zones.values():
        pts = np.array([(x * w, y * h) for x, y in z.coordinates], np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(layer, [pts], _ZONE)
    cv2.addWeighted(layer, 0.18, out, 0.82, 0, dst=out)
    for name, z in cfg.zones.items():
        pts = np.array([(x * w, y * h) for x, y in z.coordinates], np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [pts], True, _ZONE, 2, cv2.LINE_AA)
        x, y = pts.reshape(-1, 2).min(axis=0)
        _label(out, f"zone {name}: {occupancy.get(name, 0)}", (int(x) + 2, int(y) + 18), _ZONE)


def _draw_lines(out: np.ndarray, cfg: CameraConfig) -> None:
    h, w = out.shape[:2]
    for name, line in cfg.lines.items():
        (ax, ay), (bx, by) = ((x * w, y * h) for x, y in line.points)
        cv2.line(out, (int(ax), int(ay)), (int(bx), int(by)), _LINE, 2, cv2.LINE_AA)
        # arrow from the middle, across the line, towards its "in" side
        dx, dy = bx - ax, by - ay
        nx, ny = -dy, dx
        ix, iy = _ARROWS[line.in_]
        if nx * ix + ny * iy < 0:
            nx, ny = -nx, -ny
        norm = max((nx * nx + ny * ny) ** 0.5, 1e-6)
        mx, my = (ax + bx) / 2, (ay + by) / 2
        tip = (int(mx + 40 * nx / norm), int(my + 40 * ny / norm))
        cv2.arrowedLine(out, (int(mx), int(my)), tip, _LINE, 2, cv2.LINE_AA, tipLength=0.35)
        _label(out, f"{name} in", (tip[0] + 6, tip[1] + 5), _LINE)


def _legend(out: np.ndarray, pos: float | None) -> None:
    h, w = out.shape[:2]
    x, y = 8, h - 50
    panel = out[max(0, y - 18) :, : min(w, 370)]
    panel[:] = (panel * 0.4).astype(out.dtype)  # darkened, not hidden: the road stays visible
    cv2.rectangle(out, (x, y - 10), (x + 22, y + 2), (255, 255, 255), 2)
    legend = "track: #id colour type confidence plate"
    cv2.putText(out, legend, (x + 30, y), _FONT, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    _dashed_rect(out, (x, y + 8), (x + 22, y + 20), _GREY)
    cv2.putText(out, "unconfirmed detection", (x + 30, y + 18), _FONT, 0.45, _GREY, 1, cv2.LINE_AA)
    if pos is not None:
        stamp = f"{int(pos) // 60:02d}:{pos % 60:04.1f}"
        cv2.putText(out, stamp, (x + 30, y + 38), _FONT, 0.45, _LINE, 1, cv2.LINE_AA)
        cv2.putText(out, "arrow = line's in", (x + 110, y + 38), _FONT, 0.45, _LINE, 1, cv2.LINE_AA)


def _label(out: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int]) -> None:
    (tw, th), _ = cv2.getTextSize(text, _FONT, 0.5, 1)
    x, y = org
    cv2.rectangle(out, (x, y - th - 4), (x + tw + 4, y + 2), colour, -1)
    cv2.putText(out, text, (x + 2, y - 2), _FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)


def _dashed_rect(
    out: np.ndarray, p0: tuple[int, int], p1: tuple[int, int], colour: tuple[int, int, int], dash: int = 6
) -> None:
    (x0, y0), (x1, y1) = p0, p1
    for a, b, fixed, horizontal in ((x0, x1, y0, True), (x0, x1, y1, True), (y0, y1, x0, False), (y0, y1, x1, False)):
        for s in range(a, b, 2 * dash):
            e = min(s + dash, b)
            q0, q1 = ((s, fixed), (e, fixed)) if horizontal else ((fixed, s), (fixed, e))
            cv2.line(out, q0, q1, colour, 1)


def _box(b: np.ndarray) -> tuple[float, float, float, float]:
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


def _px(box: tuple[float, float, float, float], w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return int(x0 * w), int(y0 * h), int(x1 * w), int(y1 * h)


class AnnotatedVideo:
    """Writes every frame of ``source`` with the overlay of the latest inferred frame at or
    before it, at the source frame rate, to ``path`` (H.264 MP4 via ffmpeg, else MPEG-4)."""

    def __init__(
        self,
        source: str,
        path: Path,
        cfg: CameraConfig,
        frame_filter: Callable[[np.ndarray, Any], np.ndarray] | None = None,
    ) -> None:
        self.cfg = cfg
        self.frame_filter = frame_filter  # e.g. the privacy filter: masks people before drawing
        self.path = path
        self._cap = cv2.VideoCapture(source)
        if not self._cap.isOpened():
            raise SourceError(f"cannot read {source} for the annotated video")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1.0 <= fps <= 240.0 else cfg.detect.fps
        self._overlay = Overlay()
        self._sink: _FrameSink | None = None
        self._pending: tuple[float, np.ndarray] | None = None  # read ahead, not written yet
        self._last_at = -1.0
        self.frames = 0

    def until(self, pts: float, overlay: Overlay | None) -> None:
        """Write the source frames before ``pts`` with the current overlay, then switch to
        ``overlay`` (of the frame inferred at ``pts``; None keeps the current one)."""
        self._write_before(pts)
        if overlay is not None:
            self._overlay = overlay

    def close(self) -> None:
        """Write the remaining source frames and finish the file."""
        try:
            self._write_before(float("inf"))
        finally:
            self._cap.release()
            if self._sink is not None:
                self._sink.close()

    def _write_before(self, pts: float) -> None:
        while True:
            if self._pending is None:
                ok, image = self._cap.read()
                if not ok:
                    return
                at = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if at <= self._last_at:  # missing timestamps: nominal rate (as the camera reader does)
                    at = self._last_at + 1.0 / self.fps
                self._last_at = at
                self._pending = (at, image)
            at, image = self._pending
            if at >= pts - 1e-3:
                return
            self._pending = None
            if self.frame_filter is not None:
                image = self.frame_filter(image, None)
            frame = draw(image, self._overlay, self.cfg, at)
            if self._sink is None:
                self._sink = open_sink(self.path, self.fps, frame.shape[1], frame.shape[0])
            self._sink.write(frame)
            self.frames += 1


class _FrameSink:
    def write(self, image: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _FfmpegSink(_FrameSink):
    """Raw BGR frames piped into ``ffmpeg -c:v libx264 -pix_fmt yuv420p -movflags +faststart``."""

    def __init__(self, exe: str, path: Path, fps: float, w: int, h: int) -> None:
        cmd = [
            exe, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}",
            "-r", f"{fps:g}", "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", str(path),
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, image: np.ndarray) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(np.ascontiguousarray(image).tobytes())
        except BrokenPipeError:
            raise SourceError(f"ffmpeg stopped writing the annotated video: {self._error()}") from None

    def close(self) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        if self._proc.wait(timeout=120) != 0:
            raise SourceError(f"ffmpeg failed writing the annotated video: {self._error()}")

    def _error(self) -> str:
        assert self._proc.stderr is not None
        return self._proc.stderr.read().decode("utf-8", "replace").strip()[-300:]


class _OpenCvSink(_FrameSink):
    def __init__(self, path: Path, fps: float, w: int, h: int) -> None:
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
        if not self._writer.isOpened():
            raise SourceError(f"cannot write annotated video {path}")

    def write(self, image: np.ndarray) -> None:
        self._writer.write(image)

    def close(self) -> None:
        self._writer.release()


def open_sink(path: Path, fps: float, w: int, h: int) -> _FrameSink:
    """A writer of ``w`` x ``h`` BGR frames to ``path`` at ``fps``: H.264 MP4 through ffmpeg, else
    OpenCV's MPEG-4 (with a warning). ``write(image)`` each frame, then ``close()``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("ffmpeg")
    if exe is not None and w % 2 == 0 and h % 2 == 0:  # yuv420p needs even sizes
        return _FfmpegSink(exe, path, fps, w, h)
    log.warning("no ffmpeg with even frame size: annotated video is MPEG-4 Part 2, which browsers may not play")
    return _OpenCvSink(path, fps, w, h)
