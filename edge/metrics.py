"""Prometheus metrics and the ``/metrics`` + ``/healthz`` HTTP endpoint.

Camera readers and pipelines keep plain ``stats`` objects; a custom collector reads them at
scrape time (duck-typed, ``getattr`` with defaults) so those modules never import Prometheus
and a scrape costs nothing between scrapes. Everything lives in an own ``CollectorRegistry``
(no global state: tests and several apps in one process do not collide).
"""

from __future__ import annotations

import json
import logging
import platform
import selectors
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge import __version__
from edge.events.payloads import BadAttrs, LineAttrs

if TYPE_CHECKING:
    from edge.events.outbox import OutboxStats
    from edge.events.schema import Event

log = logging.getLogger("edge.metrics")


class OutboxState(Protocol):
    """What the metrics and ``/healthz`` read of the outbox (:class:`edge.events.outbox.Outbox`)."""

    def stats(self) -> OutboxStats: ...


class WorkerLoad(Protocol):
    """What the metrics read of a camera worker (edge.app CameraWorker): its thread's CPU time
    and the time it waited for a fair turn."""

    cpu_seconds: float
    wait_seconds: float


class PublisherState(Protocol):
    """What the metrics and ``/healthz`` read of the MQTT publisher (:class:`edge.events.mqtt.MqttPublisher`)."""

    @property
    def connected(self) -> bool: ...

    @property
    def inflight(self) -> int: ...

    @property
    def connects(self) -> int: ...

    @property
    def last_error(self) -> str | None: ...

THERMAL_DIR = Path("/sys/class/thermal")

INFERENCE_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
PUBLISH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

# (stats attribute, metric suffix, help) for counters read from reader.stats / pipeline.stats
_CAMERA_COUNTERS = (
    ("frames_read", "frames_read", "Frames decoded from the camera"),
    ("frames_dropped", "frames_dropped", "Frames dropped because processing fell behind"),
    ("frames_sampled", "frames_sampled", "Frames passed on to the pipeline after fps sampling"),
    ("reconnects", "reconnects", "Camera reconnects"),
    ("stalls", "stalls", "Times the camera stopped delivering frames (stall watchdog)"),
)
_PIPELINE_COUNTERS = (
    ("frames_in", "frames", "Frames entering the pipeline"),
    ("frames_inferred", "frames_inferred", "Frames sent to the detector"),
    ("frames_motion_skipped", "frames_motion_skipped", "Frames skipped by motion gating"),
    ("frame_errors", "frame_errors", "Frames the pipeline could not process (logged, skipped)"),
)


def _num(obj: Any, name: str, default: float = 0.0) -> float:
    """A numeric stats field, or ``default`` when missing/None/not a number."""
    value = getattr(obj, name, default)
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def read_temperatures(thermal_dir: Path = THERMAL_DIR) -> list[tuple[str, str, float]]:
    """(zone, type, degrees C) for each readable ``thermal_zone*``; empty where there are none."""
    out = []
    for zone in sorted(thermal_dir.glob("thermal_zone*")):
        try:
            milli = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            kind = (zone / "type").read_text().strip()
        except OSError:
            kind = "unknown"
        out.append((zone.name, kind, milli / 1000.0))
    return out


class _StatsCollector(Collector):
    """Reads cameras, pipelines, outbox and MQTT state at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        with m._lock:
            cameras = dict(m._cameras)
        cam_counters = {
            attr: CounterMetricFamily(f"edge_camera_{suffix}", help_, labels=["camera"])
            for attr, suffix, help_ in _CAMERA_COUNTERS
        }
        up = GaugeMetricFamily("edge_camera_up", "1 if the camera is delivering frames", labels=["camera"])
        fps = GaugeMetricFamily("edge_camera_capture_fps", "Frames per second read from the camera", labels=["camera"])
        last = GaugeMetricFamily(
            "edge_camera_last_frame_timestamp_seconds", "UTC epoch of the last frame read", labels=["camera"]
        )
        pipe_counters = {
            attr: CounterMetricFamily(f"edge_pipeline_{suffix}", help_, labels=["camera"])
            for attr, suffix, help_ in _PIPELINE_COUNTERS
        }
        gated = GaugeMetricFamily(
            "edge_pipeline_motion_gated_ratio",
            "Fraction of pipeline frames skipped by motion gating",
            labels=["camera"],
        )
        tracks = GaugeMetricFamily("edge_pipeline_active_tracks", "Tracks currently alive", labels=["camera"])
        for name, (reader, pipeline) in sorted(cameras.items()):
            rs = getattr(reader, "stats", None)
            if rs is not None:
                for attr, fam in cam_counters.items():
                    fam.add_metric([name], _num(rs, attr))
                up.add_metric([name], 1.0 if getattr(rs, "connected", False) else 0.0)
                fps.add_metric([name], _num(rs, "capture_fps"))
                last.add_metric([name], _num(rs, "last_frame_time"))
            else:
                up.add_metric([name], 0.0)
            ps = getattr(pipeline, "stats", None)
            if ps is not None:
                for attr, fam in pipe_counters.items():
                    fam.add_metric([name], _num(ps, attr))
                frames_in = _num(ps, "frames_in")
                gated.add_metric([name], _num(ps, "frames_motion_skipped") / frames_in if frames_in else 0.0)
                tracks.add_metric([name], _num(ps, "active_tracks"))
        yield from cam_counters.values()
        yield from (up, fps, last)
        yield from pipe_counters.values()
        yield from (gated, tracks)
        with m._lock:
            workers = dict(m._workers)
        if workers:
            cpu = CounterMetricFamily(
                "edge_camera_cpu_seconds",
                "CPU time of the camera's own thread (Python side of its pipeline; inference runtimes "
                "and ffmpeg use other threads/processes)",
                labels=["camera"],
            )
            wait = CounterMetricFamily(
                "edge_camera_turn_wait_seconds",
                "Time the camera waited for its fair turn at processing",
                labels=["camera"],
            )
            for name, w in sorted(workers.items()):
                cpu.add_metric([name], _num(w, "cpu_seconds"))
                wait.add_metric([name], _num(w, "wait_seconds"))
            yield from (cpu, wait)

        outbox = m.outbox
        if outbox is not None:
            st = outbox.stats()
            yield _gauge("edge_outbox_depth", "Messages waiting in the outbox for a broker ack", st.depth)
            yield _gauge("edge_outbox_bytes", "Bytes used by the outbox (budget accounting)", st.bytes)
            yield _gauge("edge_outbox_budget_bytes", "Outbox disk budget", st.max_bytes)
            yield _gauge("edge_outbox_disk_bytes", "Outbox files on disk (db + WAL + shm)", st.disk_bytes)
            yield _gauge("edge_outbox_oldest_age_seconds", "Age of the oldest waiting message", st.oldest_age())
            unwritable = _num(st, "dropped_unwritable")
            c = CounterMetricFamily(
                "edge_outbox_dropped",
                "Messages dropped: reason budget = outbox.max_bytes full, unwritable = the outbox file "
                "cannot be written and more than outbox.memory_max_bytes waited in memory",
                labels=["reason"],
            )
            c.add_metric(["budget"], st.dropped - unwritable)
            c.add_metric(["unwritable"], unwritable)  # both exported from the start: increase() sees the first drop
            yield c
            yield _gauge(
                "edge_outbox_memory_messages",
                "Messages held in memory because the outbox file cannot be written",
                _num(st, "memory_depth"),
            )
            yield _gauge(
                "edge_outbox_writable",
                "0 while the outbox file cannot be written (disk full, I/O error, read-only)",
                0.0 if getattr(st, "write_error", None) else 1.0,
            )
        pub = m.publisher
        if pub is not None:
            yield _gauge("edge_mqtt_connected", "1 while connected to the MQTT broker", 1.0 if pub.connected else 0.0)
            yield _gauge("edge_mqtt_inflight", "Messages sent and not yet acknowledged", float(pub.inflight))
            c = CounterMetricFamily("edge_mqtt_connects", "Successful MQTT connections")
            c.add_metric([], float(pub.connects))
            yield c
        temps = read_temperatures(m.thermal_dir)
        if temps:
            g = GaugeMetricFamily(
                "edge_device_temperature_celsius", "Thermal zone temperature", labels=["zone", "type"]
            )
            for zone, kind, deg in temps:
                g.add_metric([zone, kind], deg)
            yield g


def _gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, help_)
    g.add_metric([], value)
    return g


class Metrics:
    """All appliance metrics in one registry. Thread-safe."""

    def __init__(self, device: str = "edge-1", thermal_dir: Path = THERMAL_DIR) -> None:
        self.registry = CollectorRegistry()
        self.thermal_dir = thermal_dir
        self._lock = threading.Lock()
        self._cameras: dict[str, tuple[Any, Any]] = {}
        self.outbox: OutboxState | None = None  # set by watch_delivery
        self.publisher: PublisherState | None = None
        r = self.registry
        self.events = Counter("edge_events", "Events emitted", ["camera", "type"], registry=r)
        self.line_crossings = Counter(
            "edge_line_crossings",
            "Line crossings by line, direction and vehicle type",
            ["camera", "line", "dir", "type"],
            registry=r,
        )
        self.inference = Histogram(
            "edge_inference_seconds",
            "Inference latency",
            ["model", "backend"],
            buckets=INFERENCE_BUCKETS,
            registry=r,
        )
        self.publish_latency = Histogram(
            "edge_mqtt_publish_seconds",
            "Time from publish to broker acknowledgement",
            buckets=PUBLISH_BUCKETS,
            registry=r,
        )
        self.pipeline_errors = Counter(
            "edge_pipeline_errors", "Frames whose processing raised (skipped)", ["camera"], registry=r
        )
        self.camera_restarts = Counter(
            "edge_camera_restarts", "Camera worker restarts after a failure", ["camera"], registry=r
        )
        # -- many cameras: latency per camera (edge.app CameraWorker) -------------------------
        self._workers: dict[str, WorkerLoad] = {}
        self.frame_age = Histogram(
            "edge_camera_frame_age_seconds",
            "Age of a frame when its processing starts (now - capture time): waiting in the reader and for a turn",
            ["camera"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.capture_to_outbox = Histogram(
            "edge_event_capture_to_outbox_seconds",
            "From the capture of the frame that caused an event to the event's outbox insert",
            ["camera"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        Info("edge_build", "Build information", registry=r).info(
            {"version": __version__, "python": platform.python_version(), "device": device}
        )
        r.register(_StatsCollector(self))

    def add_camera(self, name: str, reader: Any = None, pipeline: Any = None) -> None:
        """Expose ``reader.stats`` and ``pipeline.stats`` of camera ``name``; hooks inference timing."""
        with self._lock:
            self._cameras[name] = (reader, pipeline)
        if pipeline is not None:
            try:
                pipeline.on_inference = self.observe_inference
            except AttributeError:  # a pipeline with __slots__ and no hook: just no histogram
                log.debug("pipeline of %s has no on_inference hook", name)

    def watch_delivery(self, outbox: OutboxState | None, publisher: PublisherState | None) -> None:
        """Report the outbox (depth, age, drops) and the MQTT publisher (connection, in flight)."""
        self.outbox, self.publisher = outbox, publisher

    def add_worker(self, name: str, worker: WorkerLoad) -> None:
        """Expose ``worker.cpu_seconds`` and ``worker.wait_seconds`` of camera ``name``."""
        with self._lock:
            self._workers[name] = worker

    def observe_frame_age(self, camera: str, seconds: float) -> None:
        """A frame of ``camera`` starts processing ``seconds`` after its capture."""
        self.frame_age.labels(camera).observe(max(0.0, seconds))

    def observe_capture_to_outbox(self, camera: str, seconds: float) -> None:
        """An event of ``camera`` reached the outbox ``seconds`` after its frame's capture."""
        self.capture_to_outbox.labels(camera).observe(max(0.0, seconds))

    def observe_inference(self, model_name: str, backend: str, seconds: float) -> None:
        """The ``pipeline.on_inference`` hook."""
        self.inference.labels(model_name, backend).observe(seconds)

    def observe_publish(self, seconds: float) -> None:
        """The publisher's latency hook."""
        self.publish_latency.observe(seconds)

    def count_event(self, event: Event) -> None:
        """The event bus hook."""
        self.events.labels(event.camera, event.type).inc()
        if event.type == "line":
            try:
                line = event.attrs_as(LineAttrs)
            except BadAttrs:  # counted above; a crossing without its line has no series
                return
            kind = line.type or event.label or "unknown"
            self.line_crossings.labels(event.camera, line.line, line.dir, kind).inc()

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)


class HealthCheck:
    """The ``/healthz`` rule: is the appliance doing its job (see events -> broker)?

    Unhealthy (HTTP 503), with each reason listed in ``problems``, when any of:

    1. the app is shutting down;
    2. at least one camera is enabled and **no** camera has been up (delivering frames) for
       more than ``camera_grace`` seconds, counted from start or from the last check that saw
       one up;
    3. MQTT is configured, the broker is **disconnected**, and the oldest message waiting in the
       outbox is older than ``backlog_max_age`` seconds (events pile up undelivered);
    4. the outbox file cannot be written (disk full, I/O error, read-only): new events wait in
       memory, and beyond its bound they are dropped.

    Healthy (HTTP 200) otherwise: some cameras down while another works (listed per camera), a
    disconnected broker with an empty or young backlog (a broker restart), a connected broker
    draining an old backlog, and the first ``camera_grace`` seconds after start. The body always
    reports cameras (name -> up), ``cameras_up``, ``mqtt`` (connected, last_error) and ``outbox``
    (depth, oldest_age, dropped, in_memory, write_error). Call it from one thread at a time (the
    HTTP server does).
    """

    CAMERA_GRACE = 60.0
    BACKLOG_MAX_AGE = 300.0

    def __init__(
        self,
        camera_grace: float = CAMERA_GRACE,
        backlog_max_age: float = BACKLOG_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera_grace = camera_grace
        self.backlog_max_age = backlog_max_age
        self._clock = clock
        self._camera_seen_up = clock()

    def __call__(
        self,
        cameras: Mapping[str, bool],
        publisher: PublisherState | None = None,
        outbox: OutboxState | None = None,
        shutting_down: bool = False,
    ) -> dict[str, Any]:
        """The ``/healthz`` body for cameras (name -> up), the MQTT publisher (duck-typed:
        ``connected``, ``last_error``; None without MQTT) and the outbox (``stats()``)."""
        now = self._clock()
        problems: list[str] = []
        if shutting_down:
            problems.append("shutting down")
        up = sum(1 for v in cameras.values() if v)
        if up or not cameras:
            self._camera_seen_up = now
        down_for = now - self._camera_seen_up
        if cameras and not up and down_for > self.camera_grace:
            problems.append(f"no camera up for {down_for:.0f} s (grace {self.camera_grace:g} s)")
        mqtt: dict[str, Any] | None = None
        if publisher is not None:
            mqtt = {"connected": bool(publisher.connected), "last_error": getattr(publisher, "last_error", None)}
        box: dict[str, Any] | None = None
        if outbox is not None:
            st = outbox.stats()
            box = {"depth": st.depth, "oldest_age": round(st.oldest_age(), 1), "dropped": st.dropped}
            write_error = getattr(st, "write_error", None)
            box["in_memory"], box["write_error"] = int(_num(st, "memory_depth")), write_error
            if write_error:
                since = getattr(st, "unwritable_since", None)
                lasted = f" for {max(0.0, time.time() - since):.0f} s" if since else ""
                problems.append(
                    f"outbox cannot be written{lasted}: {write_error}; {box['in_memory']} event(s) held in memory, "
                    f"{int(_num(st, 'dropped_unwritable'))} dropped"
                )
            if mqtt is not None and not mqtt["connected"] and st.depth and st.oldest_age() > self.backlog_max_age:
                cause = f": {mqtt['last_error']}" if mqtt["last_error"] else ""
                problems.append(
                    f"MQTT broker disconnected and {st.depth} event(s) waiting, oldest {st.oldest_age():.0f} s "
                    f"(limit {self.backlog_max_age:g} s){cause}"
                )
        return {
            "ok": not problems,
            "problems": problems,
            "cameras": dict(cameras),
            "cameras_up": up,
            "no_camera_up_for": round(down_for, 1) if cameras and not up else 0.0,
            "mqtt": mqtt,
            "outbox": box,
        }


class _PooledHTTPServer(HTTPServer):
    """``http.server`` (the stdlib parses HTTP; nothing hand-written) with bounded resources.

    Why not ``ThreadingHTTPServer``: it starts one thread per connection and never times a
    connection out, so idle sockets (a port scanner, a stuck scraper) each hold a thread forever.
    Here one thread accepts connections and waits (``selectors``) until a client has sent
    something; only then a fixed pool of ``workers`` threads handles the request. So idle
    connections cost a file descriptor, not a thread:

    - a connection that sends nothing for ``timeout`` seconds is closed;
    - at most ``max_idle`` connections wait at a time; a new one closes the oldest waiting one
      (a fresh scrape always gets in, however many idle sockets are open);
    - at most ``workers + backlog`` requests are handled or queued; beyond that a ready
      connection is closed at once;
    - a client that stalls mid-request holds a worker for at most ``timeout`` seconds (socket
      timeout of the handler).
    """

    request_queue_size = 128  # listen backlog; socketserver's 5 makes a burst of connects wait for SYN retries

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        workers: int,
        backlog: int,
        max_idle: int,
        timeout: float,
    ) -> None:
        super().__init__(address, handler)
        self.timeout_s = timeout
        self.max_idle = max_idle
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edge-metrics-http")
        self._slots = threading.BoundedSemaphore(workers + backlog)
        self._waiting: OrderedDict[socket.socket, tuple[Any, float]] = OrderedDict()  # sock -> (addr, deadline)
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._active: set[socket.socket] = set()  # sockets a worker is handling
        self._active_lock = threading.Lock()
        self._stopping = False

    def serve(self) -> None:
        """Accept, wait for data, dispatch, expire idle connections; until :meth:`stop`."""
        self.socket.setblocking(False)
        self._sel.register(self.socket, selectors.EVENT_READ)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        while not self._stopping:
            try:
                self._serve_once()
            except Exception:  # never let the endpoint die of one odd connection
                log.exception("metrics endpoint error; continuing")
                time.sleep(0.1)
        for sock in list(self._waiting):
            self._drop(sock)

    def _serve_once(self) -> None:
        timeout = None
        if self._waiting:
            first_deadline = next(iter(self._waiting.values()))[1]  # insertion order = deadline order
            timeout = max(0.0, first_deadline - time.monotonic())
        for key, _ in self._sel.select(timeout):
            if key.fileobj is self.socket:
                self._accept()
            elif key.fileobj is not self._wake_r:
                self._dispatch(key.fileobj)  # type: ignore[arg-type]
        now = time.monotonic()
        while self._waiting and next(iter(self._waiting.values()))[1] <= now:
            self._drop(next(iter(self._waiting)))

    def _accept(self) -> None:
        try:
            sock, addr = self.socket.accept()
        except OSError:  # the client went away already, or EAGAIN
            return
        if len(self._waiting) >= self.max_idle:
            self._drop(next(iter(self._waiting)))  # the oldest idle one makes room
        self._waiting[sock] = (addr, time.monotonic() + self.timeout_s)
        self._sel.register(sock, selectors.EVENT_READ)

    def _drop(self, sock: socket.socket) -> None:
        self._waiting.pop(sock, None)
        self._sel.unregister(sock)
        self.shutdown_request(sock)

    def _dispatch(self, sock: socket.socket) -> None:
        addr, _ = self._waiting.pop(sock)
        self._sel.unregister(sock)
        if not self._slots.acquire(blocking=False):  # every worker busy and the queue full
            self.shutdown_request(sock)
            return
        sock.setblocking(True)
        self._pool.submit(self._work, sock, addr)

    def _work(self, sock: socket.socket, addr: Any) -> None:
        with self._active_lock:
            self._active.add(sock)
        try:
            self.finish_request(sock, addr)
        except Exception:
            log.debug("metrics request from %s failed", addr, exc_info=True)
        finally:
            with self._active_lock:
                self._active.discard(sock)
            self.shutdown_request(sock)
            self._slots.release()

    def stop(self) -> None:
        """Make :meth:`serve` return (call from another thread)."""
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def server_close(self) -> None:
        super().server_close()
        with self._active_lock:  # unblock workers reading from slow clients (exit needs them)
            for sock in self._active:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()


class MetricsServer:
    """``/metrics`` (Prometheus text) and ``/healthz`` (JSON) on a background thread."""

    def __init__(
        self,
        metrics: Metrics,
        host: str = "127.0.0.1",
        port: int = 9108,
        health: Callable[[], dict[str, Any]] | None = None,
        *,
        workers: int = 4,
        max_idle: int = 64,
        timeout: float = 10.0,
    ) -> None:
        """``port`` 0 picks a free port (see :attr:`port`). ``health`` returns a dict with an
        ``ok`` bool (HTTP 200 vs 503) plus any details.

        Resources stay bounded whatever clients do: ``workers`` threads handle requests,
        at most ``max_idle`` connections wait for their request, and a connection silent for
        ``timeout`` seconds is closed (see :class:`_PooledHTTPServer`)."""
        self.metrics = metrics
        self.health = health or (lambda: {"ok": True})
        server = self
        self_timeout = timeout

        class Handler(BaseHTTPRequestHandler):
            timeout = self_timeout  # socket timeout: a stalled client frees its worker

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, server.metrics.render())
                elif path == "/healthz":
                    try:
                        body = dict(server.health())
                    except Exception as err:  # a broken health check is itself unhealthy
                        body = {"ok": False, "error": str(err)}
                    code = 200 if body.get("ok") else 503
                    self._send(code, "application/json", json.dumps(body).encode())
                else:
                    self._send(404, "text/plain", b"not found: try /metrics or /healthz\n")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
                log.debug("http: " + format, *args)

        self._httpd = _PooledHTTPServer(
            (host, port), Handler, workers=workers, backlog=2 * workers, max_idle=max_idle, timeout=timeout
        )
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve, name="edge-metrics", daemon=True)

    def start(self) -> MetricsServer:
        """Start serving; returns self."""
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics (health: /healthz)", self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._httpd.stop()
        self._thread.join(timeout=5)
        self._httpd.server_close()
