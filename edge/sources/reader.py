"""One thread per camera: read, sample, resize and hand frames over; reconnect when needed.

Frames leave at the detect size (``detect.width``/``height``), except for cameras that crop
plates from native frames (``native_frames``): those get the decoded frame as is (still bounded
by ``max_frame_pixels``) and the pipeline resizes it for detection.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator

from edge.config import CameraConfig
from edge.errors import SourceError
from edge.redact import redact_text
from edge.sources.buffer import FrameBuffer
from edge.sources.capture import Capture, ReadTimeout
from edge.sources.ffmpeg import DEFAULT_MAX_PIXELS, decode_args_for, find_ffmpeg
from edge.sources.kinds import CaptureOptions
from edge.sources.sampling import Backoff, RateDemand, Sampler, resize
from edge.sources.stats import RateMeter, ReaderStats
from edge.sources.url import Source, parse_source
from edge.types import Frame

log = logging.getLogger("edge.sources.reader")

_REPLAY_QUEUE = 4  # frames buffered ahead of a replay consumer (decoding overlaps inference)


class CameraReader:
    """Reads one camera on its own thread and delivers sampled ``Frame`` objects.

    Live sources (and files with ``realtime``) keep only the newest sampled frame: a slow
    consumer gets recent frames, and the ones it missed are counted in
    ``stats.frames_dropped``. Files with ``realtime=False`` block the reader instead, so
    every sampled frame is delivered. Create it with ``open_camera``.

    ``max_open_attempts`` bounds a live reader: after that many consecutive connection
    attempts without a frame it gives up (``failure``; iterating raises it if no frame ever
    came) instead of retrying forever. None (default) retries forever, except for a live
    source with ``realtime=False``: that is a one-shot replay (``edge replay rtsp://...``),
    which must end with one clear error, so it gets a single attempt.

    ``demand`` (shared with the camera's pipeline): frames come at ``detect.burst_fps`` only
    while it asks for the burst, else at ``detect.fps``. None: always at ``detect.sample_fps``.
    """

    def __init__(
        self,
        name: str,
        cfg: CameraConfig,
        source: Source,
        *,
        start_time: float | None = None,
        max_open_attempts: int | None = None,
        demand: RateDemand | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.source = source
        if max_open_attempts is None and source.live and not cfg.realtime:
            max_open_attempts = 1
        if max_open_attempts is not None and max_open_attempts < 1:
            raise ValueError("max_open_attempts must be at least 1")
        self.max_open_attempts = max_open_attempts
        # Decoded frames above this are downscaled (live) or refused (files): bounded memory.
        self.max_pixels = int(getattr(cfg, "max_frame_pixels", DEFAULT_MAX_PIXELS))
        self.native = native_frames(cfg)  # deliver decoded frames unresized (the pipeline resizes)
        self._failure: SourceError | None = None
        self.stats = ReaderStats()
        self._start_time = start_time
        self._stop = threading.Event()
        latest = source.live or cfg.realtime
        self.latest = latest  # keeps only the newest frame: a consumer may skip to it (edge.app)
        self._buffer = FrameBuffer(1 if latest else _REPLAY_QUEUE, latest=latest)
        self._thread: threading.Thread | None = None
        self._index = 0  # frames read over the reader's lifetime (across reconnects and loops)
        self._rate = RateMeter()
        self._ffmpeg = find_ffmpeg() if source.source_type.needs_ffmpeg else None
        self._last_logged_error: str | None = None
        self._demand = demand
        self._consumed = -math.inf  # capture time of the frame the consumer took last (for the demand)
        # replay with a demand: the reader waits for the consumer before a frame only the burst takes
        self._idle = threading.Condition()
        self._reading = False  # the consumer is inside read()
        self._taken = 0  # frames the consumer took
        self._handed = 0  # frames handed to the buffer

    # -- public API ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader thread. For files, opens the file first and raises SourceError."""
        if self._thread is not None:
            raise RuntimeError(f"camera {self.name} already started")
        target: Callable[[], None] = self._run_live
        if not self.source.live:
            capture = self._new_capture()
            capture.open(0.0)  # a missing or undecodable file fails here, in the caller's thread
            target = functools.partial(self._run_file, capture)
        self._thread = threading.Thread(target=self._guarded, args=(target,), name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and wait up to ``timeout`` s for the thread (and ffmpeg) to end."""
        self._stop.set()
        self._buffer.close(discard=True)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("camera %s: reader did not stop within %g s", self.name, timeout)

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next sampled frame; None on timeout, after ``stop`` or at the end of a file."""
        with self._idle:
            self._reading = True
            self._idle.notify_all()
        frame = self._buffer.get(timeout)
        self._reading = False  # before _taken: see _wait_for_consumer
        if frame is not None:
            self.stats.frames_sampled += 1
            self._consumed = frame.capture_time
            self._taken += 1
        return frame

    def __iter__(self) -> Iterator[Frame]:
        """Sampled frames until ``stop()`` or the end of a non-looping file.

        A bounded live reader (``max_open_attempts``) that gave up before any frame raises
        its ``failure`` (a SourceError naming the redacted URL) here.
        """
        while True:
            frame = self.read(0.5)
            if frame is not None:
                yield frame
            elif self.finished or self._stop.is_set():
                if self._failure is not None and self._index == 0 and not self._stop.is_set():
                    raise self._failure
                return

    @property
    def failure(self) -> SourceError | None:
        """Why a bounded live reader gave up (None while it runs, or if it never gave up)."""
        return self._failure

    @property
    def finished(self) -> bool:
        """True once the reader ended (stop, end of file, fatal error) and all frames were read."""
        return self._buffer.drained

    def __enter__(self) -> CameraReader:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- reader thread ---------------------------------------------------------------------

    def _guarded(self, target: Callable[[], None]) -> None:
        """Run the loop; whatever happens, never raise into anything else."""
        try:
            target()
        except Exception as err:  # noqa: BLE001 - a camera must not take the process down
            msg = redact_text(f"{type(err).__name__}: {err}")
            self.stats.last_error = msg
            log.error("camera %s: reader failed: %s", self.name, msg)
        finally:
            self.stats.connected = False
            self.stats.capture_fps = 0.0
            self._buffer.close()

    def _run_live(self) -> None:
        rc = self.cfg.reconnect
        backoff = Backoff(rc.initial_delay, rc.max_delay)
        sampler = Sampler(self.cfg.detect.fps, self.cfg.detect.burst_fps)
        attempt = 0
        failed = 0  # consecutive attempts without a frame
        while not self._stop.is_set():
            if attempt:
                self.stats.reconnects += 1
            attempt += 1
            capture = self._new_capture()
            graceful = True
            try:
                capture.open(rc.open_timeout)
                self._pump_live(capture, sampler)
                if not self._stop.is_set():
                    self._fail(f"stream from {self.source.display} ended: {capture.end_reason()}")
            except ReadTimeout:
                graceful = False  # ffmpeg is wedged: kill it
                if self.stats.connected:
                    self.stats.stalls += 1
                    self._fail(f"stall: no frame from {self.source.display} for {rc.stall_timeout:g} s")
                else:
                    self._fail(f"no video from {self.source.display} within {rc.open_timeout:g} s")
            except SourceError as err:
                if not self._stop.is_set():
                    self._fail(str(err))
            except Exception as err:  # noqa: BLE001 - keep retrying whatever went wrong
                self._fail(f"unexpected {type(err).__name__}: {err}", level=logging.ERROR)
            finally:
                got_frames = self.stats.connected
                self.stats.connected = False
                self.stats.capture_fps = 0.0
                self._rate.reset()
                capture.close(graceful=graceful)
            if got_frames:
                backoff.reset()  # the connection worked: retry quickly
                failed = 0
            elif not self._stop.is_set():
                failed += 1
                if self.max_open_attempts is not None and failed >= self.max_open_attempts:
                    self._failure = SourceError(self.stats.last_error or f"cannot open {self.source.display}")
                    log.info("camera %s: giving up after %d attempt(s)", self.name, failed)
                    return
            delay = backoff.next()
            if not self._stop.is_set():
                log.debug("camera %s: reconnecting in %.2f s", self.name, delay)
            self._stop.wait(delay)

    def _new_capture(self) -> Capture:
        """A new, unopened capture from this source's type (``edge.sources.kinds``)."""
        options = CaptureOptions(
            max_pixels=self.max_pixels,
            stop=self._stop,
            rtsp_transport=self.cfg.rtsp_transport,
            decode=str(getattr(self.cfg, "decode", "all")),
            decode_args=decode_args_for(self.cfg),  # hardware decode (h10-devices)
            loop=self.cfg.loop,
            ffmpeg=self._ffmpeg,
        )
        return self.source.source_type.open(self.source, options)

    def _pump_live(self, capture: Capture, sampler: Sampler) -> None:
        """Read frames until the stream ends; ReadTimeout when no frame comes in time."""
        rc = self.cfg.reconnect
        timeout = rc.open_timeout  # the first frame may take a keyframe interval to arrive
        while not self._stop.is_set():
            if not capture.grab(timeout):
                return
            now, mono = time.time(), time.monotonic()
            if not self.stats.connected:
                # First frame of this connection: it works.
                self.stats.connected = True
                self._last_logged_error = None
                w, h = capture.size
                log.info("camera %s: connected to %s (%dx%d)", self.name, self.source.display, w, h)
            timeout = rc.stall_timeout
            self._deliver(capture, now, mono, mono, sampler)

    def _run_file(self, capture: Capture) -> None:
        base = self._start_time if self._start_time is not None else time.time()
        sampler = Sampler(self.cfg.detect.fps, self.cfg.detect.burst_fps)
        realtime = self.cfg.realtime
        clock0: float | None = None
        pts0 = 0.0
        self.stats.connected = True
        looping = " (loop)" if self.cfg.loop else ""
        log.info("camera %s: reading %s%s", self.name, self.source.display, looping)
        try:
            while not self._stop.is_set():
                if not capture.grab(0.0):
                    log.info("camera %s: end of %s", self.name, self.source.display)
                    return
                pts = capture.pts or 0.0
                if realtime:
                    # Pace by media time so the file behaves like a camera.
                    if clock0 is None:
                        clock0, pts0 = time.monotonic(), pts
                    wait = clock0 + (pts - pts0) - time.monotonic()
                    if wait > 0 and self._stop.wait(wait):
                        return
                self._deliver(capture, base + pts, time.monotonic(), pts, sampler)
        finally:
            capture.close()

    def _deliver(self, capture: Capture, capture_time: float, mono: float, t: float, sampler: Sampler) -> None:
        """Count a frame read at ``capture_time``; if sampled at time ``t``, hand it over."""
        stats = self.stats
        index = self._index
        self._index += 1
        stats.frames_read += 1
        stats.last_frame_time = time.time()
        stats.capture_fps = self._rate.tick(mono)
        if not sampler.accept(t, burst=self._burst(sampler, t)):
            return
        image = capture.retrieve()
        if not self.native:
            det = self.cfg.detect
            image = resize(image, det.width, det.height)
        frame = Frame(camera=self.name, index=index, capture_time=capture_time, image=image, pts=capture.pts)
        stats.frames_dropped += self._buffer.put(frame)
        self._handed += 1

    def _burst(self, sampler: Sampler, t: float) -> bool:
        """Whether the frame at ``t`` is sampled at the burst rate (see ``RateDemand``)."""
        demand = self._demand
        if demand is None:
            return True
        if not sampler.wants(t, burst=True) or sampler.wants(t, burst=False):
            return False  # not a frame that only the burst would take
        if not self.latest:
            # A replay reader runs a few frames ahead of its pipeline: before a frame that only
            # the burst would take, wait until the pipeline has finished every frame handed on
            # (as it has, near enough, on a live camera). Replays stay deterministic.
            self._wait_for_consumer()
        return demand.bursting(self._consumed)

    def _wait_for_consumer(self) -> None:
        """Until the consumer took every frame handed on and asks for the next (or stop)."""
        with self._idle:
            # _taken before _reading: read() clears _reading before it counts a frame taken
            while not (self._taken == self._handed and self._reading) and not self._stop.is_set():
                self._idle.wait(0.1)

    def _fail(self, message: str, level: int = logging.WARNING) -> None:
        """Record a (redacted) problem; log it loudly once, then quietly while it repeats."""
        message = redact_text(message)
        self.stats.last_error = message
        if self.max_open_attempts is not None and level < logging.ERROR:
            level = logging.INFO  # bounded: the caller reports the failure (one line, not two)
        if message != self._last_logged_error:
            log.log(level, "camera %s: %s", self.name, message)
            self._last_logged_error = message
        else:
            log.debug("camera %s: %s", self.name, message)


def native_frames(cfg: CameraConfig) -> bool:
    """Whether this camera's frames are delivered at native resolution: only when plates are read
    from full-resolution crops and a detect size is set. Every other camera keeps the cheap
    detect-size frames (a smaller buffer, and the resize happens once, here)."""
    plates = cfg.plates
    det = cfg.detect
    wants = plates is not None and plates.enabled and plates.full_resolution
    return bool(wants and (det.width or det.height))


def open_camera(
    name: str,
    cfg: CameraConfig,
    *,
    start_time: float | None = None,
    max_open_attempts: int | None = None,
    demand: RateDemand | None = None,
) -> CameraReader:
    """Create (not start) the reader for ``cfg.url``.

    Raises SourceError at once for an unsupported URL, a missing file or a missing ffmpeg.
    ``start_time`` (files only) fixes ``capture_time = start_time + pts`` for reproducible replays.
    ``max_open_attempts`` (live only): give up after that many failed connects in a row
    instead of retrying forever (see ``CameraReader``; one-shot uses pass 1). ``demand``: shared
    with the camera's pipeline, sets the sampling rate (``CameraReader``).
    """
    source = parse_source(cfg.url)
    if source.source_type.check is not None:
        source.source_type.check(source.location)  # e.g. a missing file fails now, not on start
    return CameraReader(
        name, cfg, source, start_time=start_time, max_open_attempts=max_open_attempts, demand=demand
    )


def probe(url: str, timeout: float, *, rtsp_transport: str = "tcp") -> None:
    """Check that ``url`` yields a decodable frame within ``timeout`` s, else raise SourceError.

    For one-shot uses (``edge replay`` of a URL) that must fail with one clear line instead
    of retrying forever.
    """
    source = parse_source(url)
    options = CaptureOptions(max_pixels=DEFAULT_MAX_PIXELS, rtsp_transport=rtsp_transport)
    capture = source.source_type.open(source, options)
    if not source.live:
        capture.open(0.0)
        capture.close()
        return
    deadline = time.monotonic() + timeout
    try:
        capture.open(timeout)
        try:
            ok = capture.grab(max(0.1, deadline - time.monotonic()))
        except ReadTimeout:
            raise SourceError(f"no video from {source.display} within {timeout:g} s") from None
        if not ok:
            raise SourceError(f"cannot read {source.display}: {capture.end_reason()}")
    finally:
        capture.close(graceful=False)
