"""The ``edge`` command. Every user error ends in one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edge import __version__
from edge.errors import EdgeError

if TYPE_CHECKING:  # imported lazily at run time: `edge --help` stays fast
    from edge.config import AppConfig
    from edge.events.bus import Processor

log = logging.getLogger("edge")


def repo_dir() -> Path:
    """The checkout (or site-packages folder) this package runs from."""
    return Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """``$EDGE_SHARED``, else the shared folder beside the checkout (models, data)."""
    return Path(os.environ.get("EDGE_SHARED") or repo_dir().parent / "shared")


def demo_video() -> Path:
    """The sample lot video ``edge demo`` plays."""
    return shared_dir() / "data" / "videos" / "car-detection.mp4"


def install_model_builder() -> None:
    """Let the registry build models on first pull with ``edge convert`` (the registry does not
    import the toolchain; without ``convert`` a built model falls back to its source)."""
    try:
        from convert.builder import install
    except ImportError:  # a package without the conversion toolchain
        return
    install()


def _cmd_config_check(args: argparse.Namespace) -> int:
    from edge.config import check_config

    res = check_config(args.file, no_env=args.no_env)
    cams = ", ".join(f"{name} ({'on' if on else 'off'})" for name, on in res.cameras.items())
    print(f"{args.file}: OK — device {res.device_id}, cameras: {cams}")
    if res.unchecked:  # names only: the values are what --no-env keeps out
        print(f"  not checked (--no-env): fields using {', '.join('${' + n + '}' for n in res.unchecked)}")
    return 0


def _cmd_models_list(args: argparse.Namespace) -> int:
    from edge.registry import list_manifests
    from edge.registry.pull import all_cached, default_cache_dir, model_dir

    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    manifests = list_manifests()
    w = max([4, *(len(m.name) for m in manifests)])
    print(f"{'name':{w}} {'task':17} {'format':9} {'backends':16} cached")
    for m in manifests:
        cached = all_cached(m, model_dir(m.name, cache))  # built models: the sha256 recorded when built
        print(f"{m.name:{w}} {m.task:17} {m.format:9} {','.join(m.backends):16} {'yes' if cached else 'no'}")
    return 0


def _cmd_models_pull(args: argparse.Namespace) -> int:
    from edge.registry import pull

    cache = Path(args.cache_dir) if args.cache_dir else None
    for name in args.names:
        folder = pull(name, cache_dir=cache, mirror=args.mirror, force=args.force)  # reports on stderr
        print(f"{name}: ready in {folder}")
    return 0


def _replay_config(args: argparse.Namespace) -> tuple[AppConfig, str]:
    from edge.config import config_for_video, load_config

    if args.config:
        app = load_config(args.config)
        camera = args.camera or next(iter(app.cameras))
        if camera not in app.cameras:
            raise EdgeError(f"camera {camera!r} is not in {args.config}; it has {', '.join(app.cameras)}")
        return app, camera
    overrides: dict[str, object] = {}
    if args.model:
        overrides["detect"] = {"model": args.model}
    return config_for_video(args.video, **overrides), "camera"


def _cmd_replay(args: argparse.Namespace) -> int:
    from edge.replay import replay

    app, camera = _replay_config(args)
    if args.out or (args.filter and not args.annotate):
        return _replay_filter(args, app, camera)
    if not args.events_out and not args.annotate:
        raise EdgeError("nothing to write: pass --events-out FILE and/or --annotate FILE (or --filter NAME --out FILE)")
    out = Path(args.events_out) if args.events_out else None
    res = replay(
        args.video,
        app,
        camera,
        events_out=out,
        processors=_replay_processors(app),
        annotate=Path(args.annotate) if args.annotate else None,
        show_progress=not args.quiet,
        start_time=_start_time(args.start_time),
        annotate_filter=args.filter or "privacy",
    )
    fps = res.frames / res.seconds if res.seconds else 0.0
    where = ", ".join(str(p) for p in (out, args.annotate) if p)
    print(
        f"replayed {res.frames} frames in {res.seconds:.1f} s ({fps:.1f} fps, {res.frames_inferred} inferred): "
        f"{res.tracks} tracks, {res.events} events -> {where}",
        file=sys.stderr,
    )
    return 0


def _replay_filter(args: argparse.Namespace, app: AppConfig, camera: str) -> int:
    """``edge replay VIDEO --filter NAME --out OUT.mp4``: every frame through the filter."""
    from edge.privacy.filters import build_filter
    from edge.privacy.video import filter_video

    if not (args.filter and args.out):
        raise EdgeError("--filter and --out go together: edge replay VIDEO --filter privacy --out OUT.mp4")
    if args.events_out or args.annotate:
        raise EdgeError("--out writes the filtered video alone; run --events-out/--annotate separately")
    frame_filter = build_filter(args.filter, app.cameras[camera], app.model_options())
    res = filter_video(args.video, Path(args.out), frame_filter, show_progress=not args.quiet)
    print(
        f"filtered {res.frames} frames ({args.filter}) in {res.seconds:.1f} s ({res.speed:.1f} fps) "
        f"-> {args.out} at {res.fps:g} fps",
        file=sys.stderr,
    )
    return 0


def _replay_processors(app: AppConfig) -> list[Processor]:
    """The rule engine and screen time of ``app``, in memory: a replay never touches a device's state."""
    from edge.clock import ManualClock
    from edge.rules import build_processors

    return build_processors(app, ManualClock(), None, persist=False)


def _start_time(text: str | None) -> float | None:
    """``--start-time`` (ISO 8601; UTC unless it names a zone) as epoch seconds; None = now."""
    if not text:
        return None
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise EdgeError(f"--start-time {text!r} is not an ISO 8601 time (e.g. 2026-11-22T08:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _cmd_demo(args: argparse.Namespace) -> int:
    from edge.demo import run_demo

    return run_demo(args.video, shared_dir(), demo_video(), fast=args.fast, as_json=args.json)


def _cmd_run(args: argparse.Namespace) -> int:
    from edge.app import run
    from edge.config import load_config

    return run(load_config(args.config), config_path=args.config)


def _cmd_feedback_export(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.feedback.export import export
    from edge.feedback.store import FeedbackStore, default_db_path

    db = Path(args.db) if args.db else default_db_path(load_config(args.config))
    if not db.is_file():
        raise EdgeError(f"feedback database not found: {db}")
    store = FeedbackStore(db)
    try:
        res = export(store, Path(args.dir))
    finally:
        store.close()
    print(f"{args.dir}: {res.labels} label(s), {res.images} image(s)")
    return 0


def _cmd_fleet(args: argparse.Namespace) -> int:
    from edge.fleet.config import load_fleet_config
    from edge.fleet.service import run as run_fleet

    if not args.config:
        raise EdgeError("edge fleet needs --config FILE (or a subcommand: edge fleet hash-password)")
    return run_fleet(load_fleet_config(args.config))


def _cmd_fleet_hash_password(_args: argparse.Namespace) -> int:
    from edge.fleet.web.auth import hash_password, read_password

    print(hash_password(read_password()))
    return 0


def _cmd_plates_bench(args: argparse.Namespace) -> int:
    from edge.plates.bench import main as bench_main

    return bench_main([*args.dirs, *(["--regions", args.regions] if args.regions else [])])


def _cmd_convert(args: argparse.Namespace) -> int:
    from convert.cli import main as convert_main  # lazy: the [convert] extra may not be installed

    return convert_main(args.convert_args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(prog="edge", description="Edge video analytics appliance")
    p.add_argument("--version", action="version", version=f"edge {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    p.add_argument("--debug", action="store_true", help="show tracebacks for unexpected errors")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser(
        "demo", help="run the pipeline on the sample lot video and a gate scene (plates, anomalies), print events"
    )
    d.add_argument("--video", help="another video file instead of both (with the lot's counting line)")
    d.add_argument("--fast", action="store_true", help="as fast as possible instead of real time")
    d.add_argument("--json", action="store_true", help="print the events as JSON lines")
    d.set_defaults(func=_cmd_demo)

    r = sub.add_parser("replay", help="run the whole pipeline on a video file as fast as possible")
    r.add_argument("video")
    r.add_argument("--config", help="YAML config; its first camera (or --camera) is used with VIDEO as url")
    r.add_argument("--camera", help="camera of --config to use")
    r.add_argument("--model", help="detector model (without --config)")
    r.add_argument("--events-out", help="JSON-lines file for the events")
    r.add_argument("--annotate", help="write an annotated MP4 (H.264): boxes, tracks, zones, lines")
    r.add_argument(
        "--filter",
        help="frame filter (edge.privacy.filters: privacy, none); with --out: every frame through it; "
        "with --annotate: before drawing (default privacy: the camera's privacy policy)",
    )
    r.add_argument("--out", help="with --filter: write the filtered video (H.264 MP4, source frame rate)")
    r.add_argument(
        "--start-time",
        help="ISO 8601 time of the video's first frame (default: now); ts = start time + pos",
    )
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_replay)

    run = sub.add_parser("run", help="run the appliance from a config file")
    run.add_argument("--config", required=True)
    run.set_defaults(func=_cmd_run)

    c = sub.add_parser("config", help="configuration tools")
    csub = c.add_subparsers(dest="config_command", required=True)
    cc = csub.add_parser("check", help="validate a config file and print every problem")
    cc.add_argument("file")
    cc.add_argument(
        "--no-env",
        action="store_true",
        help="do not read the environment: ${VAR:-default} takes its default, fields using an unset ${VAR} "
        "are not checked (for CI of config repositories)",
    )
    cc.set_defaults(func=_cmd_config_check)

    m = sub.add_parser("models", help="model registry")
    msub = m.add_subparsers(dest="models_command", required=True)
    ml = msub.add_parser("list", help="list known models and whether they are cached")
    ml.add_argument("--cache-dir")
    ml.set_defaults(func=_cmd_models_list)
    mp = msub.add_parser("pull", help="fetch models into the cache (sha256-verified)")
    mp.add_argument("names", nargs="+")
    mp.add_argument("--mirror", help="folder or URL laid out <name>/<files> (default $EDGE_MODEL_MIRROR)")
    mp.add_argument("--cache-dir")
    mp.add_argument("--force", action="store_true", help="fetch again even when cached")
    mp.set_defaults(func=_cmd_models_pull)

    fb = sub.add_parser("feedback", help="operator feedback (label corrections)")
    fbsub = fb.add_subparsers(dest="feedback_command", required=True)
    fe = fbsub.add_parser("export", help="write corrections as a labelled folder: DIR/<field>/<value>/<event>.jpg")
    fe.add_argument("dir")
    fe_src = fe.add_mutually_exclusive_group(required=True)
    fe_src.add_argument("--config", help="the appliance config (its feedback database is used)")
    fe_src.add_argument("--db", help="the feedback database file")
    fe.set_defaults(func=_cmd_feedback_export)

    cv = sub.add_parser(
        "convert",
        help="convert, quantize and verify models; train-classifier trains a whole-frame classifier (edge convert -h)",
        add_help=False,
    )
    cv.add_argument("convert_args", nargs=argparse.REMAINDER)
    cv.set_defaults(func=_cmd_convert)

    fl = sub.add_parser("fleet", help="operator console: store every device's events, cross-device rules, web UI")
    fl.add_argument("--config", help="fleet YAML (docs/console.md); required to run the fleet")
    fl.set_defaults(func=_cmd_fleet)
    from edge.fleet.web.auth import HASH_HELP  # stdlib only: cheap to import

    flsub = fl.add_subparsers(dest="fleet_command", metavar="{hash-password}")
    hp = flsub.add_parser("hash-password", help="print a password hash for web.users", description=HASH_HELP)
    hp.set_defaults(func=_cmd_fleet_hash_password)

    pl = sub.add_parser("plates", help="licence-plate tools")
    psub = pl.add_subparsers(dest="plates_command", required=True)
    pb = psub.add_parser("bench", help="accuracy and latency on OpenALPR-format folders")
    pb.add_argument("dirs", nargs="+")
    pb.add_argument("--regions", default="", help="plate formats for every folder, e.g. br,eu")
    pb.set_defaults(func=_cmd_plates_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edge`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["convert"]:  # its own parser (argparse REMAINDER cannot pass on a leading -h)
        return _cmd_convert(argparse.Namespace(convert_args=argv[1:]))
    args = build_parser().parse_args(argv)
    install_model_builder()
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except EdgeError as err:
        print(f"edge: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head/less that closed early
        return 0
    except KeyboardInterrupt:
        print("edge: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # last resort: one line, traceback only with --debug
        if args.debug:
            raise
        from edge.redact import redact_text

        print(
            f"edge: unexpected error: {type(err).__name__}: {redact_text(str(err))} (--debug for details)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
