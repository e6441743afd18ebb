"""The ``edge`` command. Every user error ends in one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from edge import __version__
from edge.errors import EdgeError

log = logging.getLogger("edge")

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EDGE_SHARED", REPO.parent / "shared"))
DEMO_VIDEO = SHARED / "data" / "videos" / "car-detection.mp4"


def _cmd_config_check(args: argparse.Namespace) -> int:
    from edge.config import load_config

    cfg = load_config(args.file)
    cams = ", ".join(f"{name} ({'on' if c.enabled else 'off'})" for name, c in cfg.cameras.items())
    print(f"{args.file}: OK — device {cfg.device_id}, cameras: {cams}")
    return 0


def _cmd_models_list(args: argparse.Namespace) -> int:
    from edge.registry import list_manifests
    from edge.registry.pull import default_cache_dir, model_dir, sha256_of

    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    print(f"{'name':46} {'task':17} {'format':9} {'backends':16} cached")
    for m in list_manifests():
        folder = model_dir(m.name, cache)
        cached = all((folder / f.path).is_file() and sha256_of(folder / f.path) == f.sha256 for f in m.files)
        print(f"{m.name:46} {m.task:17} {m.format:9} {','.join(m.backends):16} {'yes' if cached else 'no'}")
    return 0


def _cmd_models_pull(args: argparse.Namespace) -> int:
    from edge.registry import pull

    cache = Path(args.cache_dir) if args.cache_dir else None
    for name in args.names:
        folder = pull(name, cache_dir=cache, mirror=args.mirror, force=args.force, progress=print)
        print(f"{name}: ready in {folder}")
    return 0


def _replay_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
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
    out = Path(args.events_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        res = replay(
            args.video,
            app,
            camera,
            events_out=f,
            annotate=Path(args.annotate) if args.annotate else None,
            show_progress=not args.quiet,
        )
    fps = res.frames / res.seconds if res.seconds else 0.0
    print(
        f"replayed {res.frames} frames in {res.seconds:.1f} s ({fps:.1f} fps, {res.frames_inferred} inferred): "
        f"{res.tracks} tracks, {res.events} events -> {out}",
        file=sys.stderr,
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from edge.config import config_for_video
    from edge.events.schema import Event
    from edge.replay import replay

    video = args.video or str(DEMO_VIDEO)
    if not Path(video).is_file():
        raise EdgeError(f"demo video not found: {video} (pass --video FILE)")
    app = config_for_video(video)
    print(f"edge demo: {video} through {app.cameras['camera'].detect.model} (Ctrl-C to stop)", file=sys.stderr)

    def show(e: Event) -> None:
        if args.json:
            print(e.to_json(), flush=True)
            return
        what = " ".join(str(e.attrs[k]) for k in ("color", "type") if k in e.attrs) or e.label
        extra = f" after {e.attrs['duration']} s" if "duration" in e.attrs else ""
        zones = f" in {', '.join(e.zones)}" if e.zones else ""
        print(f"{e.ts[11:19]}  {e.camera}  {what} #{e.track} {e.phase}{zones}{extra}  (score {e.score})", flush=True)

    res = replay(video, app, "camera", on_event=show, realtime=not args.fast, show_progress=False)
    print(f"demo done: {res.tracks} vehicles tracked, {res.events} events", file=sys.stderr)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from edge.app import run
    from edge.config import load_config

    return run(load_config(args.config))


def _cmd_plates_bench(args: argparse.Namespace) -> int:
    import runpy

    sys.argv = ["bench/plates.py", *args.dirs, *(["--regions", args.regions] if args.regions else [])]
    runpy.run_path(str(REPO / "bench" / "plates.py"), run_name="__main__")
    return 0


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

    d = sub.add_parser("demo", help="run the pipeline on the bundled sample video and print events")
    d.add_argument("--video", help="another video file")
    d.add_argument("--fast", action="store_true", help="as fast as possible instead of real time")
    d.add_argument("--json", action="store_true", help="print the events as JSON lines")
    d.set_defaults(func=_cmd_demo)

    r = sub.add_parser("replay", help="run the whole pipeline on a video file as fast as possible")
    r.add_argument("video")
    r.add_argument("--config", help="YAML config; its first camera (or --camera) is used with VIDEO as url")
    r.add_argument("--camera", help="camera of --config to use")
    r.add_argument("--model", help="detector model (without --config)")
    r.add_argument("--events-out", required=True, help="JSON-lines file for the events")
    r.add_argument("--annotate", help="write the video back with boxes, labels and track ids")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_replay)

    run = sub.add_parser("run", help="run the appliance from a config file")
    run.add_argument("--config", required=True)
    run.set_defaults(func=_cmd_run)

    c = sub.add_parser("config", help="configuration tools")
    csub = c.add_subparsers(dest="config_command", required=True)
    cc = csub.add_parser("check", help="validate a config file and print every problem")
    cc.add_argument("file")
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

    cv = sub.add_parser("convert", help="convert, quantize and verify models (edge convert -h)", add_help=False)
    cv.add_argument("convert_args", nargs=argparse.REMAINDER)
    cv.set_defaults(func=_cmd_convert)

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
