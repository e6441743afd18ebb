"""``edge run``: the appliance's wiring.

* :mod:`edge.app.appliance` - :class:`App` (every subsystem's ``start_x``/``stop_x`` in boot
  order) and :func:`run`, the entry point of ``edge run``;
* :mod:`edge.app.worker` - one camera's supervised thread (:class:`CameraWorker`);
* :mod:`edge.app.delivery` - sinks -> event bus, shared with ``edge replay``;
* :mod:`edge.app.models` - the run's model pool (``make_pool``: ONNX providers, streams), OpenCV
  threads, model preloading;
* :mod:`edge.app.seams` - the protocols a source, pipeline and metrics offer the workers;
* :mod:`edge.app.summary` - the start-up summary and the stats topic.
"""

from edge.app.appliance import EXIT_CAMERA_CRASHED, App, reload_rules, run, stuck_camera
from edge.app.delivery import build_bus, build_delivery, build_publisher, build_run_bus, output_sinks, rule_engine
from edge.app.models import load_models, model_names
from edge.app.seams import CameraFactory, FramePipeline, FrameSource, PipelineFactory
from edge.app.summary import startup_summary, stats_payload
from edge.app.worker import BROKEN_AFTER, CameraWorker, PipelineBroken, _newest, make_snapshot

__all__ = [
    "BROKEN_AFTER",
    "EXIT_CAMERA_CRASHED",
    "App",
    "CameraFactory",
    "CameraWorker",
    "FramePipeline",
    "FrameSource",
    "PipelineBroken",
    "PipelineFactory",
    "_newest",
    "build_bus",
    "build_delivery",
    "build_publisher",
    "build_run_bus",
    "load_models",
    "make_snapshot",
    "model_names",
    "output_sinks",
    "reload_rules",
    "rule_engine",
    "run",
    "startup_summary",
    "stats_payload",
    "stuck_camera",
]
