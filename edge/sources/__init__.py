"""Camera readers: RTSP, HTTP(S) MJPEG, video files and V4L2 devices -> sampled ``Frame`` objects.

Public API::

    reader = open_camera("gate", cfg)      # CameraConfig; SourceError at once for a missing file
    reader.start()                         # one daemon thread per camera
    for frame in reader:                   # sampled frames until stop() or end of a file
        ...
    frame = reader.read(timeout=1.0)       # or pull one frame; None on timeout
    reader.stats                           # ReaderStats counters for metrics
    reader.stop()
    probe(url, timeout=5.0)                # one-shot check: SourceError with one clear line

Behaviour:

* Frames are sampled to ``detect.fps`` by capture time (live) or media time (files) and
  resized to ``detect.width``/``detect.height`` when set (aspect kept if only one is set).
* ``Frame.capture_time`` is the wall clock at read for live sources, and
  ``start_time`` (default: wall clock at start) + media pts for files. ``Frame.index``
  counts frames read from the source over the reader's life.
* Live sources keep only the newest sampled frame (a slow consumer sees recent frames and
  ``stats.frames_dropped`` grows); files with ``realtime=False`` never drop a sampled frame,
  the reader waits for the consumer instead.
* Live sources reconnect with capped exponential backoff (``reconnect.initial_delay`` ..
  ``max_delay``, reset after a working connection); no frame for ``stall_timeout`` s counts a
  stall and reconnects. The end of a non-looping file ends the stream.
* A camera that cannot be reached fails with ``cannot connect to URL: why`` (connection refused,
  host name not found, or what answered is not an RTSP server), the URL redacted; other open
  failures read ``cannot open URL: ffmpeg's reason`` (see ``edge.sources.open_errors``).
* A bounded reader (``open_camera(..., max_open_attempts=N)``; by default a live URL with
  ``realtime=False``, i.e. ``edge replay rtsp://...``, gets N=1) gives up after N failed
  connects in a row: iterating raises a SourceError naming the redacted URL.
* Decoded frames are capped at ``max_frame_pixels`` (default 4096x4096): ffmpeg downscales
  larger live streams itself; larger video files are refused at open with a clear error.
* Credentials are split off the configured URL as written (passwords may contain space,
  ``?``, ``#``, ``/``, ``@``; see ``edge.redact.split_userinfo``), percent-encoded for ffmpeg,
  and masked in every log line, error and stat; ffmpeg gets a URL with credentials on its
  stdin, never on its command line (see ``edge.sources.ffmpeg``).

Source types: which URLs are accepted (by the config too) and which decoder reads them is the
registry in ``edge.sources.kinds``: a new type is a module with its ``Capture`` class and one
``register(SourceType(...))`` call; the built-in ones are in ``edge.sources.builtin``.

Decoding: live sources run an ``ffmpeg`` subprocess (killable on a stall, per-camera RTSP
transport; see ``edge.sources.ffmpeg``), files are decoded in-process by OpenCV (exact
timestamps, no extra process; see ``edge.sources.capture``). Live cameras therefore need the
``ffmpeg`` executable (``$EDGE_FFMPEG`` or ``PATH``).
"""

from edge.sources import builtin  # noqa: F401  (registers the built-in source types first)
from edge.sources.kinds import SourceType, register
from edge.sources.reader import CameraReader, open_camera, probe
from edge.sources.stats import ReaderStats

__all__ = ["CameraReader", "ReaderStats", "SourceType", "open_camera", "probe", "register"]
