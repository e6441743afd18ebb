"""Live sources (RTSP, HTTP/MJPEG, V4L2 devices) decoded by an ``ffmpeg`` subprocess.

Why a subprocess rather than ``cv2.VideoCapture``:

* A stalled read can always be recovered: the reader waits on the pipe with ``poll`` and a
  deadline, and on a stall it kills the process. A read blocked inside OpenCV/FFmpeg
  cannot be cancelled from Python if the library's own timeout does not fire.
* Per-camera options (``-rtsp_transport tcp|udp``) are command-line flags; OpenCV only takes
  them from a process-wide environment variable.
* A decoder crash or memory leak stays in that process; decoding runs on another core
  without touching the GIL.

Frames come as a YUV4MPEG2 stream (``-f yuv4mpegpipe -pix_fmt yuv420p``): its header carries
the frame size (no probe round-trip, no parsing of log output) and yuv420p is half the
bytes of BGR. Only sampled frames are converted to BGR (``retrieve``).

Credentials never appear on ffmpeg's command line, which every local user can read in
``/proc/<pid>/cmdline`` and ``ps``: a URL with a user or password is given to ffmpeg's concat
demuxer as a one-line ffconcat script on its stdin (``-f concat -i pipe:0``, per-input options
as ``option`` lines), so it exists only in the two processes' memory - no file, no argv, no
environment. Each reconnect starts a new ffmpeg with the same script. What remains: root and
the same user (ptrace, ``/proc/<pid>/mem``) can still read it from memory, as for any secret
held by this process; the config file itself must be protected (mode 0600).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import select
import shutil
import subprocess
import threading
import time
from collections import deque

import cv2
import numpy as np

from edge.errors import SourceError
from edge.redact import redact_text
from edge.sources.capture import ReadTimeout
from edge.sources.kinds import SourceKind
from edge.sources.open_errors import describe_open_failure
from edge.sources.url import Source

log = logging.getLogger("edge.sources.ffmpeg")

_LOG_PREFIX = re.compile(r"^\[[^\]]*@ *0x[0-9a-fA-F]+\] *")
_URL_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://\S*|pipe:0): ")
_POLL_SLICE = 0.25  # s; how often a blocked read checks for stop()
_PIPE_SIZE = 1 << 20  # a whole frame fits in the pipe: fewer wake-ups per frame
DEFAULT_MAX_PIXELS = 4096 * 4096  # decoded frames above this are downscaled (see size_filter)


def find_ffmpeg() -> str:
    """Path of the ffmpeg executable (``$EDGE_FFMPEG`` or ``PATH``), else SourceError."""
    exe = os.environ.get("EDGE_FFMPEG") or shutil.which("ffmpeg")
    if not exe:
        raise SourceError("ffmpeg executable not found: live cameras need it (e.g. apt install ffmpeg)")
    return exe


# Protocols the concat demuxer may open for a camera URL read from its stdin script.
_PROTOCOLS = "pipe,rtsp,rtsps,rtp,srtp,tcp,udp,tls,http,https,httpproxy,crypto"


# camera ``decode`` setting -> ffmpeg decoder input options. ``fast`` skips the deblocking
# filter: the reference frames then differ slightly from the encoder's (PSNR 44 dB average, 35 dB
# worst on the test clip), which detectors do not notice (same 54 boxes on car-detection.mp4).
DECODE_OPTIONS: dict[str, list[str]] = {
    "all": [],
    "fast": ["-skip_loop_filter", "all"],
    "nonref": ["-skip_frame", "noref"],
    "key": ["-skip_frame", "nokey"],
}


def ffmpeg_command(
    ffmpeg: str,
    source: Source,
    rtsp_transport: str = "tcp",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    decode: str = "all",
    decode_args: list[str] | None = None,
) -> list[str]:
    """The ffmpeg command line that decodes ``source`` to YUV4MPEG2 on stdout.

    A URL with credentials is not on the command line (``/proc/<pid>/cmdline`` is readable
    by every local user): ffmpeg reads it from its stdin as a one-entry ffconcat script
    (``input_script``), so the caller must pipe that script in. Frames above ``max_pixels``
    are downscaled by ffmpeg (aspect kept), so no oversized frame ever reaches this process.

    ``decode`` (``all``, ``fast``, ``nonref``, ``key``): what the decoder skips - with a detect rate far
    below the stream's, decoding only reference (or key) frames saves most of the decode CPU
    and of the frames piped to us; the sampler then picks from the frames that remain.
    ``decode_args`` (``hw_decode_args``) go right before the input.
    """
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]
    if source.kind is SourceKind.RTSP:
        # The SDP already describes the streams; ffmpeg's default probing would buffer ~2 s of
        # video before the first frame (slow connects, then a burst of mis-timestamped frames).
        cmd += ["-analyzeduration", "0", "-probesize", "32"]
        if not source.has_credentials:
            cmd += ["-rtsp_transport", rtsp_transport]
    elif source.kind is SourceKind.DEVICE:
        cmd += ["-f", "v4l2"]
    if source.kind is not SourceKind.DEVICE:
        cmd += DECODE_OPTIONS.get(decode, [])
    cmd += decode_args or []
    if not decode_args:
        # one decoder thread: frame threading (the default) costs ~10% more CPU at camera sizes
        # and holds back one frame per extra thread (80 ms at 12.5 fps); many cameras fill the cores
        cmd += ["-threads", "1"]
    if source.has_credentials:
        # -nostdin only stops ffmpeg's keyboard interaction; pipe:0 still reads the script.
        cmd += ["-f", "concat", "-safe", "0", "-protocol_whitelist", _PROTOCOLS, "-i", "pipe:0"]
    else:
        cmd += ["-i", source.location]
    cmd += ["-map", "0:v:0", "-an", "-sn", "-dn"]
    # -vsync 0: pass frames through as decoded (no duplication/dropping to a constant rate).
    # The crop makes odd sizes even, which yuv420p -> BGR conversion needs; a no-op otherwise.
    cmd += ["-vsync", "0", "-vf", f"{size_filter(max_pixels)},crop=trunc(iw/2)*2:trunc(ih/2)*2"]
    cmd += ["-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "pipe:1"]
    return cmd


def hw_decode_args(
    hwaccel: str | None = None, hwaccel_device: str | None = None, decoder: str | None = None
) -> list[str]:
    """ffmpeg input options for hardware decoding (empty: software). Decoded frames are copied
    back to system memory (no ``-hwaccel_output_format``), so the rest of the command is unchanged."""
    args: list[str] = []
    if hwaccel:
        args += ["-hwaccel", hwaccel]
        if hwaccel_device:
            args += ["-hwaccel_device", hwaccel_device]
    if decoder:
        args += ["-c:v", decoder]
    return args


def decode_args_for(cfg: object) -> list[str]:
    """``hw_decode_args`` from a camera config's ``hwaccel``/``hwaccel_device``/``decoder``."""
    return hw_decode_args(
        getattr(cfg, "hwaccel", None), getattr(cfg, "hwaccel_device", None), getattr(cfg, "decoder", None)
    )


# hardware decode settings that failed here while software decoding worked: skipped from then on
_HW_FAILED: set[tuple[str, ...]] = set()  # (camera, *args): one camera's codec says nothing of another's


def size_filter(max_pixels: int) -> str:
    """An ffmpeg ``scale`` filter that shrinks frames above ``max_pixels`` (aspect kept).

    A pass-through (no pixel is touched) for frames within the limit.
    """
    m = int(max_pixels)
    over = f"gt(iw*ih,{m})"
    factor = f"sqrt({m}/(iw*ih))"
    return f"scale=w='if({over},trunc(iw*{factor}),iw)':h='if({over},trunc(ih*{factor}),ih)':flags=area"


def input_script(source: Source, rtsp_transport: str = "tcp") -> bytes | None:
    """The ffconcat script ffmpeg reads from stdin for a URL with credentials, else None.

    Per-input demuxer options (RTSP transport, probing) go in ``option`` lines. The URL has
    its credentials percent-encoded (``Source.url``) and is single-quoted ffconcat-style.
    """
    if not source.has_credentials:
        return None
    url = source.url
    if any(c in url for c in "\r\n\0"):
        raise SourceError(f"camera URL contains a line break or NUL: {source.display}")
    quoted = "'" + url.replace("'", "'\\''") + "'"
    lines = ["ffconcat version 1.0", f"file {quoted}"]
    if source.kind is SourceKind.RTSP:
        lines += [f"option rtsp_transport {rtsp_transport}", "option analyzeduration 0", "option probesize 32"]
    return ("\n".join(lines) + "\n").encode()


class FFmpegCapture:
    """One connection to a live source through an ffmpeg process (see module docstring)."""

    def __init__(
        self,
        source: Source,
        *,
        rtsp_transport: str = "tcp",
        ffmpeg: str | None = None,
        stop: threading.Event | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        decode: str = "all",
        decode_args: list[str] | None = None,
    ) -> None:
        self.source = source
        self.decode = decode
        self.decode_args = list(decode_args or [])
        self.rtsp_transport = rtsp_transport
        self.max_pixels = max_pixels
        self._ffmpeg = ffmpeg or find_ffmpeg()
        self._stop = stop or threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._fd = -1
        self._poll = select.poll()
        self._errors: deque[str] = deque(maxlen=20)
        self._stderr_thread: threading.Thread | None = None
        self._frame = bytearray()
        self._width = 0
        self._height = 0

    @property
    def pts(self) -> float | None:
        return None  # live: the wall clock at read time is the timestamp that matters

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the decoded frames, known after ``open``."""
        return self._width, self._height

    def error(self) -> str | None:
        """ffmpeg's last error line (redacted, without the ``[module @ 0x..]`` prefix)."""
        return _LOG_PREFIX.sub("", self._errors[-1]) if self._errors else None

    def open(self, timeout: float) -> None:
        """Start ffmpeg and wait up to ``timeout`` s for the stream header.

        With hardware decode args that fail while software decoding works: one warning, and this
        process decodes that camera in software from then on (``_HW_FAILED``)."""
        hw = tuple(self.decode_args)
        key = (self.source.display, *hw)
        if not hw or key in _HW_FAILED:
            return self._open(timeout, [])
        try:
            return self._open(timeout, list(hw))
        except SourceError as err:
            if self._stop.is_set():
                raise
            self.close(graceful=False)
            self._errors.clear()
            self._open(timeout, [])  # raises (without blaming the decoder) when the camera itself is down
            _HW_FAILED.add(key)
            log.warning(
                "%s: hardware decoding (%s) unavailable: %s; falling back to software decoding",
                self.source.display,
                " ".join(hw),
                err,
            )

    def _open(self, timeout: float, decode_args: list[str]) -> None:
        cmd = ffmpeg_command(
            self._ffmpeg, self.source, self.rtsp_transport, self.max_pixels, self.decode, decode_args
        )
        script = input_script(self.source, self.rtsp_transport)
        log.debug("starting: %s", redact_text(" ".join(cmd)))
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL if script is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                # Own session: a Ctrl-C in the terminal must not kill ffmpeg before we stop it.
                start_new_session=True,
            )
        except OSError as err:
            raise SourceError(f"cannot start ffmpeg for {self.source.display}: {err.strerror}") from None
        if script is not None and self._proc.stdin is not None:
            # A few hundred bytes: fits the pipe buffer, so the write never blocks.
            with contextlib.suppress(OSError):
                self._proc.stdin.write(script)
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        assert self._proc.stdout is not None
        self._fd = self._proc.stdout.fileno()
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        self._poll.register(self._fd, select.POLLIN)
        self._stderr_thread = threading.Thread(target=self._drain_stderr, name="ffmpeg-stderr", daemon=True)
        self._stderr_thread.start()

        deadline = time.monotonic() + timeout
        try:
            header = self._read_line(deadline)
        except ReadTimeout:
            raise SourceError(f"no video from {self.source.display} within {timeout:g} s") from None
        if header is None:
            if self._stop.is_set():
                raise SourceError(f"{self.source.display}: stopped")
            raise SourceError(self.open_failure())
        self._parse_header(header)

    def _parse_header(self, header: bytes) -> None:
        fields = header.decode("ascii", "replace").split()
        if not fields or fields[0] != "YUV4MPEG2":
            raise SourceError(f"unexpected ffmpeg output for {self.source.display}")
        for f in fields[1:]:
            if f[0] == "W":
                self._width = int(f[1:])
            elif f[0] == "H":
                self._height = int(f[1:])
            elif f[0] == "C" and not f.startswith("C420"):
                raise SourceError(f"unexpected pixel format {f[1:]} from ffmpeg")
        if self._width <= 0 or self._height <= 0:
            raise SourceError(f"ffmpeg reported no frame size for {self.source.display}")
        if self._width * self._height > self.max_pixels * 1.01:  # the scale filter rounds
            raise SourceError(
                f"ffmpeg delivered {self._width}x{self._height} frames for {self.source.display}, "
                f"above the {self.max_pixels} pixel limit"
            )
        self._frame = bytearray(self._width * self._height * 3 // 2)
        log.debug("%s: %dx%d", self.source.display, self._width, self._height)

    def grab(self, timeout: float) -> bool:
        """Read the next frame; False when the stream ended (or stop was requested)."""
        deadline = time.monotonic() + timeout
        marker = bytearray(6)
        if not self._fill(memoryview(marker), deadline):
            return False
        if marker != b"FRAME\n":
            if not marker.startswith(b"FRAME"):
                raise SourceError(f"corrupt video stream from ffmpeg for {self.source.display}")
            if self._read_line(deadline) is None:  # frame parameters we do not need
                return False
        return self._fill(memoryview(self._frame), deadline)

    def retrieve(self) -> np.ndarray:
        yuv = np.frombuffer(self._frame, dtype=np.uint8).reshape(self._height * 3 // 2, self._width)
        return cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)  # a new array: the buffer is reused

    def close(self, *, graceful: bool = True) -> None:
        """Stop ffmpeg: SIGTERM first so it can tear the RTSP session down, then SIGKILL."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            if graceful:
                proc.terminate()
                try:
                    proc.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
            else:
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=2.0)
        with contextlib.suppress(OSError, ValueError):
            self._poll.unregister(self._fd)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=1.0)

    # -- helpers ---------------------------------------------------------------------------

    def open_failure(self) -> str:
        """Why the stream did not open, in one line naming the redacted URL ("cannot connect to
        ..." when the camera could not be reached)."""
        reason = self.end_reason()  # waits for ffmpeg's last words
        lines = [_LOG_PREFIX.sub("", line) for line in self._errors]
        return describe_open_failure(self.source, lines, reason)

    def end_reason(self) -> str:
        """Why ffmpeg stopped, from its last error line (waits briefly for it to exit)."""
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=2.0)
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=1.0)
        reason = self.error()
        if reason:
            return _URL_PREFIX.sub("", reason)  # ffmpeg often starts with the URL we already name
        code = self._proc.returncode if self._proc is not None else None
        return f"ffmpeg exited with code {code}" if code is not None else "stream ended"

    def _drain_stderr(self) -> None:
        proc = self._proc
        if proc is None or proc.stderr is None:
            return
        with contextlib.suppress(OSError, ValueError):
            for raw in iter(proc.stderr.readline, b""):
                line = redact_text(raw.decode("utf-8", "replace").strip())
                if line:
                    self._errors.append(line)
                    log.debug("%s: ffmpeg: %s", self.source.display, line)

    def _wait_readable(self, deadline: float) -> bool:
        """True when data (or EOF) is ready; False if stop was requested; ReadTimeout at deadline."""
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReadTimeout()
            if self._poll.poll(min(remaining, _POLL_SLICE) * 1000):
                return True
        return False

    def _fill(self, view: memoryview, deadline: float) -> bool:
        """Fill ``view`` completely; False on end of stream or stop."""
        pos = 0
        while pos < len(view):
            if not self._wait_readable(deadline):
                return False
            got = os.readv(self._fd, [view[pos:]])
            if got == 0:
                return False
            pos += got
        return True

    def _read_line(self, deadline: float, limit: int = 1024) -> bytes | None:
        """Read up to a newline (the stream header is short); None on end of stream or stop."""
        line = bytearray()
        while len(line) < limit:
            if not self._wait_readable(deadline):
                return None
            ch = os.read(self._fd, 1)
            if not ch:
                return None
            if ch == b"\n":
                return bytes(line)
            line += ch
        raise SourceError(f"unexpected ffmpeg output for {self.source.display}")
