"""Camera readers against real components: Debian's GStreamer RTSP server, ffmpeg, an MJPEG
HTTP server and the shared videos. No mocks: servers are killed, restarted and frozen.

Measured timings are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import CameraConfig
from edge.errors import SourceError
from edge.sources import CameraReader, open_camera, probe
from edge.sources.capture import Capture, FileCapture
from edge.sources.ffmpeg import ffmpeg_command, input_script
from edge.sources.kinds import CaptureOptions, SourceType, register, unregister
from edge.sources.sampling import Backoff, RateDemand, Sampler, target_size
from edge.sources.url import Source, SourceKind, parse_source
from edge.types import Frame
from tests.conftest import error_lines, need_exe
from tests.fixtures.rtsp import RtspServer, free_port

FAST_RECONNECT = {"initial_delay": 0.2, "max_delay": 1.0, "stall_timeout": 2.0, "open_timeout": 4.0}


def camera(url: str, **kw: object) -> CameraConfig:
    """A camera config with short test timeouts (overridable)."""
    data: dict[str, object] = {"url": url, "reconnect": dict(FAST_RECONNECT)}
    data.update(kw)
    return CameraConfig.model_validate(data)


@pytest.fixture()
def readers() -> Iterator[Callable[..., CameraReader]]:
    """Open and start readers; all are stopped (and checked to stop) at the end."""
    started: list[CameraReader] = []

    def make(name: str, cfg: CameraConfig, **kw: object) -> CameraReader:
        reader = open_camera(name, cfg, **kw)  # type: ignore[arg-type]
        started.append(reader)
        reader.start()
        return reader

    yield make
    for r in started:
        r.stop(timeout=5)
    for r in started:
        assert r._thread is None or not r._thread.is_alive(), f"camera {r.name} did not stop"


def wait_for(cond: Callable[[], bool], timeout: float, step: float = 0.02) -> float:
    """Seconds until ``cond()`` held; fails the test after ``timeout``."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(step)
    return time.monotonic() - t0


def next_frame_after(reader: CameraReader, wall: float, timeout: float) -> tuple[Frame, float]:
    """The first frame captured after wall-clock ``wall`` and the monotonic time it arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = reader.read(timeout=0.2)
        if frame is not None and frame.capture_time > wall:
            return frame, time.monotonic()
    pytest.fail(f"no new frame within {timeout} s (stats: {reader.stats})")


def pts_of(frame: Frame | None) -> float:
    """A file frame's media time (always known for files)."""
    assert frame is not None and frame.pts is not None
    return frame.pts


def collect(reader: CameraReader, seconds: float) -> list[Frame]:
    """Every frame read during ``seconds``."""
    frames = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        frame = reader.read(timeout=0.1)
        if frame is not None:
            frames.append(frame)
    return frames


# -- pure building blocks ---------------------------------------------------------------------


def test_sampler_keeps_exact_rate_and_tolerates_jitter() -> None:
    s = Sampler(5.0)
    assert sum(s.accept(i * 0.08) for i in range(377)) == 151  # 12.5 fps file, 30.16 s
    rng = np.random.default_rng(0)
    s = Sampler(5.0)  # a jittery 5 fps camera sampled at 5 fps keeps every frame
    assert all(s.accept(i * 0.2 + rng.uniform(-0.03, 0.03)) for i in range(100))
    s = Sampler(5.0)  # a 2 fps source is not "caught up" with bursts
    assert all(s.accept(i * 0.5) for i in range(20))


def test_backoff_and_target_size() -> None:
    b = Backoff(0.5, 3.0)
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next() == 0.5
    assert target_size(768, 432, 384, None) == (384, 216)
    assert target_size(768, 432, None, 216) == (384, 216)
    assert target_size(768, 432, 300, 300) == (300, 300)
    assert target_size(768, 432, None, None) == (768, 432)


def test_parse_source_and_transport_flag() -> None:
    assert parse_source("rtsp://u:p@cam/s").kind is SourceKind.RTSP
    assert parse_source("https://cam/mjpg").kind is SourceKind.HTTP
    assert parse_source("/dev/video0").kind is SourceKind.DEVICE
    assert parse_source("file:///tmp/a%20b.mp4").location == "/tmp/a b.mp4"
    assert parse_source("clip.mp4").kind is SourceKind.FILE
    cmd = ffmpeg_command("ffmpeg", parse_source("rtsp://cam/s"), "udp")
    assert cmd[cmd.index("-rtsp_transport") + 1] == "udp"
    # With credentials the URL (and so the transport option) travels on ffmpeg's stdin.
    secret = parse_source("rtsp://u:p@ss w0rd@cam:554/s")
    cmd = ffmpeg_command("ffmpeg", secret, "udp")
    assert "pipe:0" in cmd and not any("ss w0rd" in a or "cam" in a for a in cmd)
    assert input_script(secret, "udp") == (
        b"ffconcat version 1.0\nfile 'rtsp://u:p%40ss%20w0rd@cam:554/s'\n"
        b"option rtsp_transport udp\noption analyzeduration 0\noption probesize 32\n"
    )


# -- files ------------------------------------------------------------------------------------


def test_file_replay_delivers_every_sampled_frame(car_video: Path, readers: Callable[..., CameraReader]) -> None:
    cfg = camera(str(car_video), realtime=False, detect={"fps": 5, "burst_fps": None, "width": 384})
    reader = readers("replay", cfg, start_time=1_000.0)
    frames = []
    for frame in reader:  # a consumer slower than decoding: the reader must wait, not drop
        frames.append(frame)
        time.sleep(0.002)
    assert reader.finished
    assert len(frames) == 151  # 377 frames at 12.5 fps -> every 0.2 s of media
    assert reader.stats.frames_read == 377
    assert reader.stats.frames_dropped == 0
    assert reader.stats.frames_sampled == 151
    assert frames[0].size == (384, 216)  # width only: aspect kept
    pts = [pts_of(f) for f in frames]
    assert pts[0] == 0.0 and pts[-1] == pytest.approx(30.0, abs=0.1)
    assert all(b - a == pytest.approx(0.2, abs=0.09) for a, b in zip(pts, pts[1:], strict=False))
    assert all(f.capture_time == pytest.approx(1_000.0 + pts_of(f)) for f in frames)  # reproducible
    assert all(f.index == round(pts_of(f) / 0.08) for f in frames)  # frame number in the source


def test_file_realtime_pacing(car_video: Path, readers: Callable[..., CameraReader]) -> None:
    reader = readers("rt", camera(str(car_video), realtime=True, detect={"fps": 5, "burst_fps": None}))
    first = reader.read(timeout=5)
    assert first is not None
    t0 = time.monotonic()
    frames = collect(reader, 2.0)
    elapsed = time.monotonic() - t0
    media = pts_of(frames[-1]) - pts_of(first)
    print(f"\nrealtime file: {media:.2f} s of media in {elapsed:.2f} s wall, {len(frames)} frames")
    assert media == pytest.approx(elapsed, abs=0.35)  # paced by media time, not as fast as possible
    assert 8 <= len(frames) <= 12
    assert abs(frames[-1].capture_time - time.time()) < 0.5
    assert reader.stats.capture_fps == pytest.approx(12.5, rel=0.2)


def test_file_loop(shared_data: Path, readers: Callable[..., CameraReader]) -> None:
    video = shared_data / "videos" / "traffic_frames.mp4"  # 20 frames at 30 fps
    reader = readers("loop", camera(str(video), realtime=False, loop=True, detect={"fps": 30}))
    frames = [reader.read(timeout=5) for _ in range(50)]
    assert all(f is not None for f in frames)
    assert [f.index for f in frames] == list(range(50))  # type: ignore[union-attr]
    pts = [pts_of(f) for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:], strict=False))  # time never goes back
    assert pts[20] == pytest.approx(20 / 30, abs=0.01)
    assert not reader.finished


def test_missing_or_bad_file_fails_with_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=f"^video file not found: {missing}$"):
        open_camera("x", camera(str(missing)))
    with pytest.raises(SourceError, match="video file not found"):
        probe(str(missing), timeout=1)
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    reader = open_camera("x", camera(str(bad)))
    with pytest.raises(SourceError, match="bad.mp4") as err:
        reader.start()
    assert "\n" not in str(err.value)
    assert time.monotonic() - t0 < 3


# -- RTSP -------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_reads_frames_at_detect_fps(
    transport: str, rtsp_server: RtspServer, readers: Callable[..., CameraReader]
) -> None:
    need_exe("ffmpeg")
    cfg = camera(rtsp_server.url(), rtsp_transport=transport, detect={"fps": 5, "burst_fps": None})
    t_start = time.monotonic()
    reader = readers(f"cam-{transport}", cfg)
    first = reader.read(timeout=10)
    assert first is not None, reader.stats
    connect = time.monotonic() - t_start
    collect(reader, 1.0)  # skip the server's start-up burst
    t0 = time.monotonic()
    frames = collect(reader, 3.0)
    fps = len(frames) / (time.monotonic() - t0)
    print(f"\nrtsp/{transport}: first frame after {connect:.2f} s, {fps:.2f} sampled fps")
    assert fps == pytest.approx(5.0, abs=1.0)
    assert first.size == (768, 432)
    now = time.time()
    assert all(now - 4.5 < f.capture_time <= now for f in frames)
    assert all(b.capture_time > a.capture_time for a, b in zip(frames, frames[1:], strict=False))
    assert all(b.index > a.index for a, b in zip(frames, frames[1:], strict=False))
    assert frames[0].image.dtype == np.uint8 and frames[0].image.mean() > 20  # a real picture
    assert reader.stats.connected
    assert reader.stats.capture_fps == pytest.approx(12.5, rel=0.25)
    assert reader.stats.frames_dropped == 0  # this consumer keeps up
    assert (_ffmpeg_udp_sockets() > 0) == (transport == "udp")  # the transport really is used
    t_stop = time.monotonic()
    reader.stop()
    assert time.monotonic() - t_stop < 3
    assert reader.finished


def test_rtsp_server_restart_resumes_within_5s(rtsp_server: RtspServer, readers: Callable[..., CameraReader]) -> None:
    reader = readers("cam", camera(rtsp_server.url()))
    assert reader.read(timeout=10) is not None
    rtsp_server.kill()
    down = wait_for(lambda: not reader.stats.connected, 5)
    time.sleep(1.5)  # let the reader fail a few reconnects so the backoff grows
    failed = reader.stats.reconnects
    assert failed >= 1 and reader.stats.last_error
    rtsp_server.start()
    back, back_wall = time.monotonic(), time.time()
    _frame, t_frame = next_frame_after(reader, back_wall, timeout=8)
    resume = t_frame - back
    print(f"\nrtsp restart: disconnect noticed after {down:.2f} s, frames again {resume:.2f} s after restart")
    assert resume < 5.0
    assert reader.stats.connected


def test_rtsp_stall_detected_and_recovered(rtsp_server: RtspServer, readers: Callable[..., CameraReader]) -> None:
    stall_timeout = 2.0
    reader = readers("cam", camera(rtsp_server.url()))
    assert reader.read(timeout=10) is not None
    time.sleep(0.5)
    rtsp_server.pause()  # the TCP connection stays up, frames stop
    try:
        detected = wait_for(lambda: reader.stats.stalls >= 1, stall_timeout + 3)
        assert not reader.stats.connected
        assert "stall" in (reader.stats.last_error or "")
    finally:
        rtsp_server.resume()
    back, back_wall = time.monotonic(), time.time()
    _frame, t_frame = next_frame_after(reader, back_wall, timeout=10)
    recovered = t_frame - back
    print(
        f"\nrtsp stall: detected after {detected:.2f} s (stall_timeout {stall_timeout}), "
        f"frames again {recovered:.2f} s after SIGCONT"
    )
    assert detected <= stall_timeout + 1.5
    assert recovered < 5.0
    assert reader.stats.stalls == 1


def test_slow_consumer_gets_recent_frames_not_lag(
    rtsp_server: RtspServer, readers: Callable[..., CameraReader]
) -> None:
    reader = readers("cam", camera(rtsp_server.url(), detect={"fps": 12.5}))
    assert reader.read(timeout=10) is not None
    time.sleep(1.0)  # past the start-up burst
    ages, drops = [], []
    for _ in range(6):
        time.sleep(0.5)  # "inference" far slower than the camera
        frame = reader.read(timeout=2)
        assert frame is not None
        ages.append(time.time() - frame.capture_time)
        drops.append(reader.stats.frames_dropped)
    print(f"\nslow consumer: frame ages {[round(a, 3) for a in ages]}, dropped {drops}")
    assert max(ages) < 0.5  # the newest frame, not one from a growing backlog
    assert all(b >= a + 3 for a, b in zip(drops, drops[1:], strict=False))  # ~5 stale frames per read


def test_credentials_never_logged(
    rtsp_server_factory: Callable[..., RtspServer],
    readers: Callable[..., CameraReader],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "s3cr3t-Pa55"
    caplog.set_level(logging.DEBUG, logger="edge")
    server = rtsp_server_factory(user="viewer", password=secret)
    good = readers("good", camera(server.url(user="viewer", password=secret)))
    assert good.read(timeout=10) is not None  # the credentials reach the server
    wrong = readers("wrong", camera(server.url(user="viewer", password=secret + "x")))
    refused = readers("refused", camera(f"rtsp://viewer:{secret}@127.0.0.1:{free_port()}/cars"))
    wait_for(lambda: wrong.stats.reconnects >= 1 and refused.stats.reconnects >= 1, 10)
    assert "401" in (wrong.stats.last_error or "")
    assert "refused" in (refused.stats.last_error or "").lower()
    errors = []
    for url in (server.url(user="viewer", password=secret + "x"), refused.cfg.url):
        with pytest.raises(SourceError) as err:
            probe(url, timeout=5)
        errors.append(str(err.value))
    texts = [caplog.text, *errors, repr(wrong.stats), repr(refused.stats), repr(good.stats)]
    assert "rtsp://***@127.0.0.1" in caplog.text  # URLs are logged, redacted
    for text in texts:
        assert secret not in text


def test_unreachable_url_reports_clearly_and_keeps_retrying(
    readers: Callable[..., CameraReader],
) -> None:
    need_exe("ffmpeg")
    url = f"rtsp://127.0.0.1:{free_port()}/cars"
    t0 = time.monotonic()
    with pytest.raises(SourceError) as err:
        probe(url, timeout=3)
    msg = str(err.value)
    assert url in msg and "Connection refused" in msg and "\n" not in msg
    assert time.monotonic() - t0 < 3.5
    with pytest.raises(SourceError, match="no video from"):
        # A port that accepts TCP but never answers: the deadline, not ffmpeg, ends the wait.
        with _silent_tcp_server() as port:
            probe(f"http://127.0.0.1:{port}/mjpg", timeout=1.5)
    reader = readers("gone", camera(url))  # a live camera does not raise: it retries
    wait_for(lambda: reader.stats.reconnects >= 2, 5)
    assert not reader.stats.connected and "Connection refused" in (reader.stats.last_error or "")
    assert not reader.finished


class _not_rtsp_server:  # noqa: N801 - used like a function
    """Answers every connection with an HTTP 400 and closes it: another service on the camera's
    port, or a proxy answering for a host it cannot reach (what ffmpeg calls "Invalid data")."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2)
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=2)
        self.sock.close()


def test_unreachable_camera_says_it_cannot_connect_and_to_what(
    readers: Callable[..., CameraReader], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 20: "Invalid data found" told the user nothing. Each failure names the URL (password
    masked) and why the camera could not be reached, through the real ffmpeg."""
    need_exe("ffmpeg")
    caplog.set_level(logging.DEBUG)
    secret = "S3cr3t-Pw"
    port = free_port()
    closed = f"rtsp://viewer:{secret}@127.0.0.1:{port}/cars"
    messages = []
    with pytest.raises(SourceError) as err:
        probe(closed, timeout=5)
    messages.append(str(err.value))
    assert str(err.value) == f"cannot connect to rtsp://***@127.0.0.1:{port}/cars: Connection refused"
    with _not_rtsp_server() as other:
        for url in (f"rtsp://viewer:{secret}@127.0.0.1:{other}/cars", f"rtsp://127.0.0.1:{other}/cars"):
            with pytest.raises(SourceError) as err:
                probe(url, timeout=5)
            messages.append(str(err.value))
            assert str(err.value).startswith(f"cannot connect to rtsp://{'***@' if secret in url else ''}127.0.0.1:")
            assert "not an RTSP server" in str(err.value) and "check the host and port" in str(err.value)
    with pytest.raises(SourceError) as err:  # .invalid never resolves (RFC 6761)
        probe(f"rtsp://viewer:{secret}@camera.invalid/cars", timeout=10)
    messages.append(str(err.value))
    assert str(err.value).startswith("cannot connect to rtsp://***@camera.invalid/cars: host name camera.invalid ")
    # A camera of `edge run` keeps retrying and says the same in its stats and log.
    reader = readers("gate", camera(closed))
    wait_for(lambda: reader.stats.reconnects >= 1, 10)
    assert reader.stats.last_error == messages[0]
    assert f"camera gate: {messages[0]}" in caplog.text
    for text in [*messages, repr(reader.stats)]:
        assert secret not in text and "\n" not in text
    assert secret not in caplog.text


def test_two_cameras_one_dies_other_keeps_delivering(
    rtsp_server_factory: Callable[..., RtspServer], readers: Callable[..., CameraReader]
) -> None:
    a_server, b_server = rtsp_server_factory(), rtsp_server_factory()
    a = readers("a", camera(a_server.url()))
    b = readers("b", camera(b_server.url(), rtsp_transport="udp"))
    assert a.read(timeout=10) is not None and b.read(timeout=10) is not None
    a_server.kill()
    wait_for(lambda: not a.stats.connected, 5)
    # frames ffmpeg had decoded before the server died may still drain from the pipe under load;
    # once the reader has noticed the loss, nothing more may come
    lost = time.time()
    frames = collect(b, 2.5)
    assert len(frames) >= 10 and b.stats.connected
    stale = [f for f in collect(a, 0.5) if f.capture_time > lost]
    assert not stale and a.stats.last_error
    assert a._thread is not None and a._thread.is_alive()  # still retrying, not crashed


def _ffmpeg_udp_sockets() -> int:
    """UDP sockets held by ffmpeg children of this process (from /proc, no tools needed)."""
    udp = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError):
            udp |= {line.split()[9] for line in Path(table).read_text().splitlines()[1:]}
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            comm, rest = stat.read_text().rsplit(")", 1)
            if comm.endswith("(ffmpeg") and int(rest.split()[1]) == os.getpid():
                for fd in (stat.parent / "fd").iterdir():
                    link = os.readlink(fd)
                    count += link.startswith("socket:[") and link[8:-1] in udp
    return count


# -- HTTP MJPEG -------------------------------------------------------------------------------


class _MjpegHandler(http.server.BaseHTTPRequestHandler):
    jpegs: list[bytes] = []
    fps = 10.0

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        i = 0
        try:
            while not self.server.stopping:  # type: ignore[attr-defined]
                jpeg = self.jpegs[i % len(self.jpegs)]
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode() + jpeg + b"\r\n")
                i += 1
                time.sleep(1 / self.fps)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


def test_http_mjpeg(car_video: Path, readers: Callable[..., CameraReader]) -> None:
    need_exe("ffmpeg")
    cap = cv2.VideoCapture(str(car_video))
    originals = []
    for _ in range(20):
        ok, img = cap.read()
        assert ok
        originals.append(img)
    cap.release()
    _MjpegHandler.jpegs = [cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for img in originals]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MjpegHandler)
    server.daemon_threads = True
    server.stopping = False  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/video.mjpg"
        probe(url, timeout=5)
        t_open = time.monotonic()
        reader = readers("mjpeg", camera(url, detect={"fps": 5, "burst_fps": None, "height": 216}))
        assert reader.read(timeout=10) is not None
        print(f"\nmjpeg: first frame after {time.monotonic() - t_open:.2f} s")
        t0 = time.monotonic()
        frames = collect(reader, 2.0)
        fps = len(frames) / (time.monotonic() - t0)
        assert fps == pytest.approx(5.0, abs=1.2)
        assert frames[0].size == (384, 216)
        # Colours survive MJPEG -> yuv420p -> BGR: the frame matches one of the originals.
        small = [cv2.resize(o, (384, 216), interpolation=cv2.INTER_AREA).astype(np.int16) for o in originals]
        diff = min(float(np.abs(frames[-1].image.astype(np.int16) - s).mean()) for s in small)
        assert diff < 6, diff
    finally:
        server.stopping = True  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()


class _silent_tcp_server:  # noqa: N801 - used like a function
    """A listening socket that accepts but never answers (a hung camera)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


# -- hardening (issue 7): odd passwords, one-shot readers, oversized frames -----------------------


def _ffmpeg_children() -> dict[int, bytes]:
    """pid -> /proc/<pid>/cmdline of the ffmpeg children of this process."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            comm, rest = stat.read_text().rsplit(")", 1)
            if comm.endswith("(ffmpeg") and int(rest.split()[1]) == os.getpid():
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes()
    return found


@pytest.mark.parametrize("char", [" ", "?", "#", "/", "@"], ids=["space", "qmark", "hash", "slash", "at"])
def test_odd_password_never_in_logs_errors_or_stats(
    char: str,
    rtsp_server_factory: Callable[..., RtspServer],
    readers: Callable[..., CameraReader],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from edge.redact import redact_url

    password = f"S3cr{char}tPW"
    server = rtsp_server_factory(user="viewer", password="another-one")
    rejected = server.url(user="viewer", password=password)  # 401: ffmpeg prints the whole URL
    url = f"rtsp://viewer:{password}@127.0.0.1:{free_port()}/cars"  # nothing listens
    caplog.set_level(logging.DEBUG)  # every logger, not only edge's
    logging.getLogger("edge.app").info("camera %s: %s", "gate", redact_url(url))  # as edge.app logs it
    reader = readers("gate", camera(url))
    wrong = readers("wrong", camera(rejected))
    wait_for(lambda: reader.stats.reconnects >= 1 and wrong.stats.reconnects >= 1, 10)
    with pytest.raises(SourceError) as err:
        probe(url, timeout=5)
    with pytest.raises(SourceError) as err401:
        probe(rejected, timeout=5)
    # A careless log call elsewhere (a library, an f-string) is scrubbed too.
    logging.getLogger("some.library").warning("retrying %s", url)
    logging.getLogger("some.library").error(f"failed: {password}")
    try:
        raise RuntimeError(f"connect failed for {url}")
    except RuntimeError:
        logging.getLogger("some.library").exception("boom")
    texts = [caplog.text, str(err.value), str(err401.value), repr(reader.stats), repr(wrong.stats)]
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        for part in ("S3cr", "tPW"):  # no half of the password, raw or percent-encoded
            assert part not in text, text
    assert "rtsp://***@127.0.0.1" in caplog.text and "rtsp://***@127.0.0.1" in str(err.value)
    # The error still says what failed: the URL reached ffmpeg intact (encoded), only refused.
    assert "Connection refused" in (reader.stats.last_error or "")
    assert "401" in (wrong.stats.last_error or "") and "401" in str(err401.value)


def test_odd_password_connects_and_stays_off_the_command_line(
    rtsp_server_factory: Callable[..., RtspServer], readers: Callable[..., CameraReader]
) -> None:
    password = "S3 cr?t@PW#/x"  # every character that breaks naive URL handling
    server = rtsp_server_factory(user="viewer", password=password)
    reader = readers("gate", camera(server.url(user="viewer", password=password)))
    assert reader.read(timeout=10) is not None, reader.stats  # the password reaches the camera intact
    procs = _ffmpeg_children()
    assert procs
    for cmdline in procs.values():  # what any local user can read in ps / /proc
        assert b"S3" not in cmdline and b"PW" not in cmdline and b"viewer" not in cmdline, cmdline
    for fd in ("0", "1", "2"):  # and no file on disk holds it either
        with contextlib.suppress(OSError):
            assert not os.readlink(f"/proc/{next(iter(procs))}/fd/{fd}").startswith("/")
    server.restart()  # reconnecting sends the credentials again
    frame, _ = next_frame_after(reader, time.time() + 0.5, timeout=15)
    assert frame is not None and reader.stats.reconnects >= 1
    assert all(b"S3" not in c for c in _ffmpeg_children().values())


def test_bounded_reader_gives_up_with_one_error() -> None:
    need_exe("ffmpeg")
    url = f"rtsp://viewer:S3cr@tPW@127.0.0.1:{free_port()}/cars"
    t0 = time.monotonic()
    reader = open_camera("once", camera(url), max_open_attempts=2)
    reader.start()
    try:
        with pytest.raises(SourceError) as err:
            list(reader)
    finally:
        reader.stop()
    msg = str(err.value)
    assert "rtsp://***@127.0.0.1" in msg and "Connection refused" in msg and "S3cr" not in msg
    assert reader.stats.reconnects == 1 and reader.failure is err.value
    assert time.monotonic() - t0 < 5
    # realtime=False on a live URL is a one-shot replay: a single attempt by default ...
    assert open_camera("r", camera(url, realtime=False)).max_open_attempts == 1
    # ... while a camera of `edge run` keeps retrying (test_unreachable_url_... checks it does).
    assert open_camera("r", camera(url)).max_open_attempts is None


@pytest.mark.usefixtures("model_env")
@pytest.mark.parametrize("auth", ["", "viewer:S3cr tPW@"], ids=["plain", "password"])
def test_replay_of_unreachable_url_exits_2_with_one_line(auth: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"rtsp://{auth}127.0.0.1:{free_port()}/x"
    shown = url.replace(auth, "***@") if auth else url
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "replay", url, "--events-out", str(tmp_path / "f.jsonl")],
        capture_output=True,
        timeout=30,
    )
    took = time.monotonic() - t0
    # What a terminal shows: the text after the progress bar's last carriage return per line
    # (bytes: text mode would turn every \r into a line break).
    stderr = proc.stderr.decode()
    lines = error_lines(stderr)
    assert proc.returncode == 2, stderr
    assert len(lines) == 1 and shown in lines[0] and "Connection refused" in lines[0], stderr
    assert "S3cr" not in stderr and "tPW" not in stderr
    assert took < 15


@pytest.fixture(scope="session")
def huge_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8192x8192 H.264, 6 grey frames at 2 fps: ~200 KB on disk, 100 MB per decoded frame."""
    ffmpeg = need_exe("ffmpeg")
    out = tmp_path_factory.mktemp("huge") / "huge.mp4"
    cmd = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:size=8192x8192:rate=2"]
    cmd += ["-frames:v", "6", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out)]
    subprocess_run(cmd, timeout=120)
    return out


def subprocess_run(cmd: list[str], timeout: float) -> str:
    """Run ``cmd``, fail the test on a non-zero exit; its stdout."""
    import subprocess

    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# Reads a camera in a fresh interpreter and reports the largest frame and its own peak RSS.
_READ_AND_MEASURE = """
import json, sys, time
from edge.config import CameraConfig
from edge.errors import SourceError
from edge.sources import open_camera
cfg = CameraConfig.model_validate({"url": sys.argv[1], "realtime": False, "reconnect": {"open_timeout": 10}})
shapes, error = [], None
try:
    with open_camera("huge", cfg) as reader:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(shapes) < 4:
            frame = reader.read(timeout=1)
            if frame is not None:
                shapes.append(frame.image.shape)
            elif reader.finished:
                break
except SourceError as err:
    error = str(err)
# VmHWM belongs to this process image: ru_maxrss would also count the fork of the (large)
# test process before exec
rss_mb = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:")) / 1024
print(json.dumps({"shapes": shapes, "error": error, "rss_mb": rss_mb}))
"""


def _read_and_measure(url: str) -> dict[str, object]:
    import json
    import sys

    return dict(json.loads(subprocess_run([sys.executable, "-c", _READ_AND_MEASURE, url], timeout=90)))


def test_huge_video_file_is_refused_with_bounded_memory(huge_video: Path) -> None:
    got = _read_and_measure(str(huge_video))
    print(f"\nhuge file: {got}")
    error = str(got["error"])
    assert "8192x8192" in error and str(huge_video) in error and "limit" in error
    assert not got["shapes"]
    # Refused after OpenCV's probe decode (~200 MB); decoding frames cost 0.7-1.2 GB.
    assert float(got["rss_mb"]) < 400  # type: ignore[arg-type]


def test_huge_live_stream_is_downscaled_by_ffmpeg(huge_video: Path, tmp_path: Path) -> None:
    from tests.conftest import need
    from tests.fixtures.rtsp import _gst_rtsp_available

    need(_gst_rtsp_available(), "GStreamer RTSP server")
    server = RtspServer(huge_video, tmp_path / "rtsp.log")
    server.start()
    try:
        got = _read_and_measure(server.url(path="/cars"))
    finally:
        server.kill()
    print(f"\nhuge stream: {got}")
    shapes = got["shapes"]
    assert isinstance(shapes, list) and shapes, got
    for h, w, _ in shapes:
        assert w * h <= 4096 * 4096 and w == h >= 4000  # bounded, aspect kept, not over-shrunk
    assert float(got["rss_mb"]) < 500  # type: ignore[arg-type]


def test_bounded_reader_ends_when_the_stream_ends(
    rtsp_server: RtspServer, readers: Callable[..., CameraReader]
) -> None:
    reader = readers("once", camera(rtsp_server.url(), realtime=False))  # as `edge replay rtsp://...`
    assert reader.read(timeout=10) is not None
    rtsp_server.kill()
    t0 = time.monotonic()
    rest = list(reader)  # ends (no exception: frames were delivered) once a reconnect fails
    assert time.monotonic() - t0 < 8 and reader.finished
    assert reader.failure is not None and reader.stats.reconnects == 1
    assert all(f.capture_time < time.time() for f in rest)


def _decode_all(url: str, decode: str) -> list[np.ndarray]:
    from edge.sources.ffmpeg import FFmpegCapture

    cap = FFmpegCapture(parse_source(url), decode=decode)
    cap.open(10.0)
    frames = []
    try:
        while cap.grab(10.0):
            frames.append(cap.retrieve())
    finally:
        cap.close()
    return frames


def test_fast_decode_keeps_every_frame_and_the_picture(car_video: Path) -> None:
    """``decode: fast`` (no deblocking filter, cheaper for many cameras) delivers the same frames
    as a full decode, with pictures a detector cannot tell apart (PSNR well above 30 dB)."""
    need_exe("ffmpeg")
    full = _decode_all(str(car_video), "all")  # ffmpeg reads the file as it would a camera
    fast = _decode_all(str(car_video), "fast")
    assert len(full) > 300 and abs(len(full) - len(fast)) <= 2
    psnr = [cv2.PSNR(a, b) for a, b in zip(full, fast)]
    assert min(psnr) > 30 and float(np.median(psnr)) > 38, (min(psnr), np.median(psnr))
    assert float(np.median(psnr)) < 80  # the filter really was skipped: most frames differ


def test_shrinking_a_camera_frame_keeps_the_picture(shared_data: Path) -> None:
    """The detect-size resize (whole-factor area shrink, then bilinear) gives the size asked for
    and the picture a plain area shrink gives, on a real photo scaled to camera sizes."""
    from edge.sources.sampling import resize

    photo = cv2.imread(str(shared_data / "openalpr" / "br" / "AYO9034.jpg"))
    for cam_w, cam_h, width in ((1920, 1080, 768), (3840, 2160, 768), (1280, 720, 640), (1000, 563, 768)):
        frame = cv2.resize(photo, (cam_w, cam_h), interpolation=cv2.INTER_CUBIC)
        out = resize(frame, width, None)
        size = target_size(cam_w, cam_h, width, None)
        assert (out.shape[1], out.shape[0]) == size
        reference = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        assert cv2.PSNR(out, reference) > 32, (cam_w, cv2.PSNR(out, reference))


# -- source types (edge.sources.kinds): one registration, honoured everywhere ----------------


@contextlib.contextmanager
def registered(source_type: SourceType) -> Iterator[SourceType]:
    """``source_type`` registered for the block, gone afterwards."""
    register(source_type)
    try:
        yield source_type
    finally:
        unregister(source_type.name)


def test_a_registered_file_like_source_type_is_accepted_by_the_config_and_read(
    tmp_path: Path, readers: Callable[..., CameraReader]
) -> None:
    """A ``clip://NAME`` type (videos in one folder) is one ``register`` call: the config's URL
    check accepts the scheme and lists it, and the reader reads the real file through its factory."""
    from pydantic import ValidationError

    video = tmp_path / "gate.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (64, 48))
    for i in range(12):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    opened: list[str] = []

    def clip(source: Source, opts: CaptureOptions) -> Capture:
        opened.append(source.location)
        return FileCapture(source.location, loop=opts.loop, max_pixels=opts.max_pixels)

    def in_folder(text: str) -> str:
        return str(tmp_path / text.split("://", 1)[1])

    with pytest.raises(ValidationError, match=r"unsupported URL scheme 'clip' \(rtsp, http\(s\), file path, /dev"):
        camera("clip://gate.mp4")
    folder = SourceType("clip", clip, "clip://NAME", live=False, schemes=("clip",), location=in_folder)
    with registered(folder):
        with pytest.raises(ValidationError, match=r"unsupported URL scheme 'ftp' \(.*/dev/videoN, clip://NAME\)"):
            camera("ftp://cam/x")
        assert parse_source("clip://gate.mp4").kind == "clip"
        cfg = camera("clip://gate.mp4", realtime=False, detect={"fps": 100, "burst_fps": None})
        frames = list(readers("clip", cfg))
        assert opened == [str(video)] and len(frames) == 12
        means = [float(f.image.mean()) for f in frames]  # the file's frames (brighter by 20 each), in order
        assert all(b - a > 10 for a, b in zip(means, means[1:])), means
    with pytest.raises(ValidationError, match="unsupported URL scheme 'clip'"):
        camera("clip://gate.mp4")
    with pytest.raises(SourceError, match="unsupported camera URL scheme 'clip'"):
        parse_source("clip://gate.mp4")


class _SynthCapture:
    """A live source drawn in memory: ``frames`` grey frames per connection, then the stream ends."""

    def __init__(self, stop: threading.Event, log: list[str], frames: int = 5) -> None:
        self.stop, self.log, self.left = stop, log, frames

    @property
    def pts(self) -> float | None:
        return None

    @property
    def size(self) -> tuple[int, int]:
        return (64, 48)

    def open(self, timeout: float) -> None:
        self.log.append("open")

    def grab(self, timeout: float) -> bool:
        time.sleep(0.01)
        self.left -= 1
        return self.left >= 0 and not self.stop.is_set()

    def retrieve(self) -> np.ndarray:
        return np.full((48, 64, 3), 7, np.uint8)

    def end_reason(self) -> str:
        return "synthetic stream over"

    def close(self, *, graceful: bool = True) -> None:
        self.log.append(f"close graceful={graceful}")


def test_a_registered_live_source_type_is_reconnected_by_the_reader(
    monkeypatch: pytest.MonkeyPatch, readers: Callable[..., CameraReader]
) -> None:
    """A live type gets the reader's live loop: a new capture per connection, frames handed on,
    the end of its stream logged and reconnected with backoff - and no ffmpeg, which it does not need."""
    monkeypatch.delenv("EDGE_FFMPEG", raising=False)
    monkeypatch.setenv("PATH", "")  # a type that needed ffmpeg would fail at open_camera
    calls: list[str] = []
    synth = SourceType("synth", lambda _source, opts: _SynthCapture(opts.stop, calls), "synth://", schemes=("synth",))
    with registered(synth):
        reader = readers("synth", camera("synth://grey"))
        frame = reader.read(timeout=5)
        assert frame is not None and frame.size == (64, 48) and int(frame.image.mean()) == 7
        wait_for(lambda: reader.stats.reconnects >= 1 and calls.count("open") >= 2, 5)
        assert reader.stats.last_error == "stream from synth://grey ended: synthetic stream over"
        reader.stop()
    assert calls[:2] == ["open", "close graceful=True"]


# -- detection rate that follows the scene (issue 22): the reader bursts only when asked ---------


def test_sampler_bursts_only_while_asked() -> None:
    """A 10 fps source with detect.fps 5 and burst_fps 10: 5 frames a second unless asked, 10
    while asked (2-4 s), and the base grid goes on from the last burst frame (no double frame)."""
    times = [i / 10 for i in range(100)]

    def kept(burst: Callable[[float], bool]) -> list[float]:
        s = Sampler(5.0, 10.0)
        return [t for t in times if s.accept(t, burst(t))]

    assert len(kept(lambda t: False)) == 50  # never asked: detect.fps
    assert kept(lambda t: True) == times  # always asked: every frame, as before the demand
    some = kept(lambda t: 2 <= t < 4)
    gaps = [round(b - a, 3) for a, b in zip(some, some[1:], strict=False)]
    assert set(gaps) == {0.1, 0.2} and len(some) == 60  # 10 more frames in the 2 s asked
    assert all(g == 0.1 for a, g in zip(some, gaps, strict=False) if 2 <= a < 3.9)
    assert all(g == 0.2 for a, g in zip(some, gaps, strict=False) if a < 1.9 or a >= 4)
    assert Sampler(5.0, 10.0).wants(0.0) and Sampler(5.0).wants(0.0)  # a first frame is always due
    d = RateDemand()
    assert not d.bursting(12.0)
    d.busy_at = 12.0  # the pipeline found a busy track on the frame at 12.0 ...
    assert d.bursting(12.0) and not d.bursting(12.2)  # ... the frame after it comes at the burst rate


def test_replay_reader_bursts_only_after_a_busy_frame(car_video: Path, readers: Callable[..., CameraReader]) -> None:
    """A real clip (12.5 fps) with detect.fps 5 and burst_fps 10: the reader hands on about 5
    frames a second (not 10) until the consumer says a frame had a busy track, and burst-rate
    frames right after each such frame, also while it runs ahead of the consumer (replay)."""
    det = {"fps": 5, "burst_fps": 10, "width": 384}

    def run(busy: Callable[[float], bool]) -> list[float]:
        demand = RateDemand()
        reader = readers("replay", camera(str(car_video), realtime=False, detect=det), demand=demand)
        pts = []
        for frame in reader:
            pts.append(pts_of(frame))
            time.sleep(0.003)  # a consumer slower than decoding: the reader runs ahead
            if busy(pts[-1]):
                demand.busy_at = frame.capture_time  # as edge.pipeline.rate does
        assert reader.stats.frames_dropped == 0
        return pts

    quiet = run(lambda t: False)
    assert 148 <= len(quiet) <= 156  # 30 s at 5 fps (a burst rate would be ~300)
    assert all(b - a >= 0.15 for a, b in zip(quiet, quiet[1:], strict=False))
    busy = run(lambda t: 10 <= t < 12)
    in_quiet, in_busy = [[t for t in pts if 10 <= t < 12] for pts in (quiet, busy)]
    assert len(in_quiet) <= 11 and len(in_busy) >= 18  # 2 s at 5 fps; at ~10 fps after busy frames
    assert all(b - a >= 0.15 for a, b in zip(busy, busy[1:], strict=False) if not 10 <= a < 12)
    assert len(busy) >= len(quiet) + 8
