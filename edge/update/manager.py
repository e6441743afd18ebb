"""Verify, validate, apply, confirm or roll back remote updates; restart ``run()`` around them.

Why restart ``run()`` in the same process rather than re-exec: ``run()`` already builds
everything from the config and tears it all down in the right order (cameras stop, pipelines
close their tracks, the outbox keeps what MQTT has not acknowledged), so calling it again with
the new file is a full restart of cameras, pipelines, rules, MQTT and metrics with no new code
path, no lost PID for the service manager and no half-replaced process image. What a restart in
the same process cannot fix (a leaked thread, a wedged driver) is what the service manager's
restart of a crashed process fixes; the pending update survives that too, because its state
is on disk: a process that comes back after the health deadline rolls back before it starts.

Files (``update.state_dir``, default ``.<config name>.update/`` beside the config):
``previous.yaml`` (the config before the last update), ``state.json`` (version labels, the
pending update and its deadline, the last result, ``newest_ts``), ``replay.sqlite3`` (update ids seen).

Replays: an update is accepted while its signed ``ts`` lies within ``max_age_s`` before and
``max_clock_skew_s`` after the device clock; its id is remembered for that whole window; and its
``ts`` must be newer than that of the last update applied (``newest_ts``, fsynced with the
pending state), so an older signed update sent again after a newer one cannot roll the device
back, not even after a restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from edge.commands.schema import short_repr
from edge.commands.signing import ReplayGuard, Unauthorized, check_fresh
from edge.config import AppConfig, load_config, load_yaml
from edge.errors import ConfigError
from edge.update.models import ModelRefused, ModelUse, models_in, verify
from edge.update.schema import ModelRef, UpdateCommand, parse_update
from edge.update.signing import BadSignature, load_public_keys, verify_update

if TYPE_CHECKING:
    from edge.inference.pool import ModelPool

log = logging.getLogger("edge.update")

# every update command and every health decision ends in one of these (edge_update_results_total)
RESULTS: tuple[str, ...] = ("applied", "confirmed", "rolled_back", "unauthorized", "replayed", "invalid", "refused")


class UpdateRefused(Exception):
    """An update that is not applied: ``outcome`` for the command counters (unauthorized,
    invalid, failed), ``result`` for the update counters, the reason for the reply."""

    def __init__(self, outcome: str, result: str, error: str) -> None:
        super().__init__(error)
        self.outcome, self.result, self.error = outcome, result, error


def sha12(data: bytes) -> str:
    """Short content hash: the version of an unlabelled config."""
    return hashlib.sha256(data).hexdigest()[:12]


def atomic_write(path: Path, data: bytes) -> None:
    """Write a temporary file beside ``path``, fsync it, rename it over ``path``, fsync the directory."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _iso(ts: float) -> str:
    """Epoch seconds as UTC ISO 8601 (for replies)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def _one_line(text: str) -> str:
    """A multi-line ConfigError (``config: 2 problem(s)`` then one line each) as one reply line."""
    head, *rest = [ln.strip() for ln in text.splitlines() if ln.strip()] or [""]
    return (f"{head}: {'; '.join(rest)}" if rest else head)[:1000]


class UpdateManager:
    """One per process (outlives ``run()`` restarts). Thread-safe."""

    def __init__(self, config_path: str | Path, config: AppConfig, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(config_path).absolute()
        self.cfg = config.update
        self.device = config.device_id
        self.clock = clock
        self.dir = self.cfg.state_dir or self.path.parent / f".{self.path.name}.update"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prev = self.dir / "previous.yaml"
        self.state_file = self.dir / "state.json"
        self.keys = load_public_keys(self.cfg.public_keys)
        # every id for as long as its ts is accepted (max_age_s back, max_clock_skew_s ahead)
        self.guard = ReplayGuard(self.dir / "replay.sqlite3", self.cfg.max_age_s + self.cfg.max_clock_skew_s)
        self.counts = dict.fromkeys(RESULTS, 0)
        self.restart_requested = threading.Event()
        self._lock = threading.RLock()
        self.state: dict[str, Any] = {"labels": {}, "models": {}, "pending": None, "last": None, "newest_ts": None}
        self._held: list[Any] = []  # models verified for the pending update (loaded once, kept for run())
        if self.state_file.exists():
            try:
                self.state.update(json.loads(self.state_file.read_text()))
            except (OSError, ValueError) as err:
                log.error("update state %s unreadable, starting afresh: %s", self.state_file, err)
        self.on_change: Callable[[], None] | None = None  # status changed (republish it)

    # -- versions ------------------------------------------------------------------------------

    def current_sha(self) -> str:
        """Hash of the config file in place."""
        try:
            return sha12(self.path.read_bytes())
        except OSError:
            return "unknown"

    def info(self) -> dict[str, Any]:
        """What the retained status and ``edge_update_info`` say."""
        with self._lock:
            sha = self.current_sha()
            pending = self.state.get("pending")
            last = self.state.get("last") or {}
            if pending:
                phase = "pending"
            else:
                phase = str(last.get("result", "none"))
            return {
                "config_version": self.state["labels"].get(sha, sha),
                "config_sha256": sha,
                "model_version": self.state["models"].get(sha, ""),
                "update": phase,
            }

    def _save(self) -> None:
        atomic_write(self.state_file, json.dumps(self.state, indent=1, sort_keys=True).encode())

    def _count(self, result: str) -> None:
        with self._lock:
            self.counts[result] += 1

    # -- commands (the commands worker thread) ---------------------------------------------------

    def handle(self, data: dict[str, Any], pool: ModelPool | None = None) -> dict[str, Any]:
        """Check and apply one decoded ``update`` command (its models loaded in ``pool``, the
        running App's); returns the reply fields. Raises :class:`UpdateRefused` (counted) for
        anything not applied."""
        try:
            return self._handle(data, pool)
        except UpdateRefused as err:
            self._count(err.result)
            log.warning("update %r refused (%s): %s", short_repr(data.get("id")), err.result, err.error)
            raise
        except Exception:  # a bug must still answer, and be counted, like any refusal
            log.exception("update %r failed", short_repr(data.get("id")))
            self._count("refused")
            raise UpdateRefused("failed", "refused", "update: internal error (see the device log)") from None

    def _handle(self, data: dict[str, Any], pool: ModelPool | None) -> dict[str, Any]:
        try:
            verify_update(data, self.keys)
        except BadSignature as err:
            raise UpdateRefused("unauthorized", "unauthorized", str(err)) from None
        now = self.clock()
        try:
            check_fresh(data.get("ts"), now, self.cfg.max_age_s, self.cfg.max_clock_skew_s, "update")
        except Unauthorized as err:
            raise UpdateRefused("unauthorized", "unauthorized", str(err)) from None
        if data.get("device") != self.device:
            raise UpdateRefused("unauthorized", "refused", f"device: update is for {short_repr(data.get('device'))}")
        uid = data.get("id")
        if not isinstance(uid, str) or not self.guard.first_use(uid, now):
            raise UpdateRefused("unauthorized", "replayed", "id: already used (replayed update)")
        newest = self.state.get("newest_ts")
        if isinstance(newest, int | float) and data["ts"] <= newest:
            raise UpdateRefused(
                "unauthorized",
                "replayed",
                f"ts: update signed at {_iso(data['ts'])} is not newer than the last update applied "
                f"(signed at {_iso(newest)}); sign a new one",
            )
        try:
            cmd = parse_update(data)
        except ValueError as err:
            raise UpdateRefused("invalid", "invalid", str(err)[:1000]) from None
        with self._lock:
            self._not_busy()
            current = self.path.read_bytes()
            text = self._new_text(cmd, current)
            new = self._validate(text)
        # models are pulled and loaded outside the lock: the main loop's health poll must not wait
        held, sums = self._verify_models(cmd, new, pool)
        with self._lock:
            self._not_busy()
            if self.path.read_bytes() != current:
                raise UpdateRefused("failed", "refused", "busy: the config changed meanwhile; send the update again")
            reply = self._apply(text.encode("utf-8"), current, cmd, sums)
            self._held = held
            return reply

    def _not_busy(self) -> None:
        if self.state.get("pending") or self.restart_requested.is_set():
            raise UpdateRefused("failed", "refused", "busy: the previous update is still being health-checked")

    def _new_text(self, cmd: UpdateCommand, current: bytes) -> str:
        if cmd.config is not None:
            return cmd.config
        model = cmd.model
        assert model is not None  # parse_update: kind model has one
        tree = load_yaml(current.decode("utf-8"))  # the running file: valid, so a mapping with cameras
        cameras = tree["cameras"]
        for name in model.cameras or list(cameras):
            cam = cameras.get(name)
            if not isinstance(cam, dict):
                raise UpdateRefused("invalid", "invalid", f"model.cameras: no camera {name!r} on this device")
            cam.setdefault("detect", {})[model.field] = model.ref
        return str(yaml.safe_dump(tree, sort_keys=False))

    def _validate(self, text: str) -> AppConfig:
        cand = self.dir / "candidate.yaml"
        cand.write_text(text, encoding="utf-8")
        try:
            new = load_config(cand)
        except ConfigError as err:
            raise UpdateRefused("invalid", "invalid", _one_line(str(err).replace(str(cand), "config"))) from None
        finally:
            cand.unlink(missing_ok=True)
        if new.device_id != self.device:
            raise UpdateRefused("invalid", "invalid", f"config.device_id: {new.device_id!r} is not this device")
        if not new.update.enabled:  # an update that switches updates off would lock the fleet out
            raise UpdateRefused("invalid", "invalid", "config.update.enabled: must stay true")
        try:
            load_public_keys(new.update.public_keys)
        except ValueError as err:
            raise UpdateRefused("invalid", "invalid", f"config: {err}") from None
        return new

    def _verify_models(
        self, cmd: UpdateCommand, new: AppConfig, pool: ModelPool | None
    ) -> tuple[list[Any], dict[str, str]]:
        """The models the new config would start: a model update's own reference (always, with
        its signed sha256), and those a config update adds to what runs now."""
        if cmd.model is not None:
            m: ModelRef = cmd.model
            uses = [ModelUse(m.ref, m.field, "model.ref", m.sha256)]
        else:
            try:
                running = set(models_in(load_config(self.path)))
            except ConfigError:  # the running file no longer loads (environment): check them all
                running = set()
            uses = [use for name, use in models_in(new).items() if name not in running]
        try:
            return verify(new, uses, pool)
        except ModelRefused as err:
            raise UpdateRefused("invalid", "invalid", str(err)) from None

    def _apply(self, new: bytes, current: bytes, cmd: UpdateCommand, sums: dict[str, str]) -> dict[str, Any]:
        old = self.info()
        sha = sha12(new)
        label = cmd.version or sha
        uid = cmd.id
        atomic_write(self.prev, current)  # keep the previous config first: a crash now changes nothing
        atomic_write(self.path, new)
        self.state["labels"][sha] = label
        newest = self.state.get("newest_ts")
        self.state["newest_ts"] = cmd.ts if not isinstance(newest, int | float) else max(newest, cmd.ts)
        if cmd.model is not None:  # the sha256 verified on disk (equal to the signed one when given)
            self.state["models"][sha] = f"{cmd.model.ref}@{sums[cmd.model.ref]}"
        else:
            self.state["models"].setdefault(sha, self.state["models"].get(old["config_sha256"], ""))
        self.state["pending"] = {
            "id": uid,
            "version": label,
            "sha": sha,
            "previous": old["config_version"],
            "applied_at": self.clock(),
            "deadline": self.clock() + self.cfg.health_timeout,
        }
        self._save()
        self.counts["applied"] += 1
        log.warning("update %s applied: config %s -> %s; restarting", uid, old["config_version"], label)
        self.restart_requested.set()
        return {
            "cmd": "update",
            "version": label,
            "previous": old["config_version"],
            "restarting": True,
            "health_timeout": self.cfg.health_timeout,
        }

    # -- health (the app's main loop) ----------------------------------------------------------

    def check_health(self, cameras_up: Mapping[str, bool]) -> None:
        """Confirm the pending update once every enabled camera is up; roll back at the deadline."""
        with self._lock:
            pending = self.state.get("pending")
            if not pending or self.restart_requested.is_set():
                return
            if cameras_up and all(cameras_up.values()):
                took = self.clock() - pending["applied_at"]
                self.state["last"] = {"result": "confirmed", "version": pending["version"], "seconds": round(took, 2)}
                self.state["pending"] = None
                self._save()
                self.counts["confirmed"] += 1
                self._held = []  # the new run() holds its models now
                log.warning("update %s confirmed: cameras up %.1f s after applying", pending["version"], took)
            elif self.clock() > pending["deadline"]:
                down = sorted(n for n, up in cameras_up.items() if not up)
                self.rollback(f"cameras not up {self.cfg.health_timeout:g} s after the update: {', '.join(down)}")
                return
            else:
                return
        if self.on_change is not None:
            self.on_change()

    def recover(self) -> None:
        """At process start: a pending update whose deadline passed while the process was down
        (it crashed or hung with the new config) is rolled back before anything runs."""
        with self._lock:
            pending = self.state.get("pending")
            if pending and self.clock() > pending["deadline"]:
                self.rollback("the process was down past the health deadline")

    @property
    def pending(self) -> bool:
        """An applied update is waiting for healthy cameras."""
        return bool(self.state.get("pending"))

    def rollback(self, reason: str) -> None:
        """Put the previous config back (atomically) and ask for a restart."""
        with self._lock:
            pending = self.state.get("pending") or {}
            if not self.prev.exists():
                log.error("update rollback impossible: %s missing", self.prev)
                return
            atomic_write(self.path, self.prev.read_bytes())
            self.state["last"] = {
                "result": "rolled_back",
                "version": pending.get("version"),
                "restored": pending.get("previous"),
                "reason": reason,
                "at": self.clock(),
            }
            self.state["pending"] = None
            self._save()
            self.counts["rolled_back"] += 1
            self._held = []
            self.restart_requested.set()
        log.error("update %s rolled back to %s: %s", pending.get("version"), pending.get("previous"), reason)

    def close(self) -> None:
        """Close the replay database."""
        self.guard.close()


class UpdateSession:
    """What one ``run()`` sees of the manager: the command hook, the status and the health poll."""

    def __init__(self, manager: UpdateManager, outer_stop: threading.Event) -> None:
        self.manager = manager
        self.outer_stop = outer_stop
        self.restart = False

    def handle(self, data: dict[str, Any], pool: ModelPool | None = None) -> dict[str, Any]:
        """The ``update`` command, its models loaded in ``pool`` (raises :class:`UpdateRefused`)."""
        return self.manager.handle(data, pool)

    def status_payloads(self) -> tuple[str, str]:
        """Retained status JSON: (online, offline/last will), both with the versions."""
        info = self.manager.info()
        dump = lambda state: json.dumps({"state": state, **info}, separators=(",", ":"))  # noqa: E731
        return dump("online"), dump("offline")

    def poll(self, cameras_up: Mapping[str, bool]) -> bool:
        """Called by the main loop: True when ``run()`` must return now (stop, or restart)."""
        if self.outer_stop.is_set():
            return True
        self.manager.check_health(cameras_up)
        if self.manager.restart_requested.is_set():
            self.restart = True
            return True
        return False


def run_with_updates(
    run_fn: Callable[..., int],
    config: AppConfig,
    config_path: str | Path,
    stop_event: threading.Event | None = None,
    **kwargs: Any,
) -> int:
    """Call ``run_fn(config, stop, updates=session, config_path=..., **kwargs)`` again after
    every applied update or rollback, with the config file then in place."""
    outer = stop_event or threading.Event()
    try:
        manager = UpdateManager(config_path, config)
    except (ValueError, OSError) as err:  # an unreadable key or state directory: a config problem
        raise ConfigError(f"update: {err}") from None
    if config.mqtt is None or not config.commands.enabled:
        log.warning("update.enabled needs mqtt and commands.enabled: no update can arrive")
    try:
        manager.recover()
        while True:
            if manager.restart_requested.is_set():
                manager.restart_requested.clear()
                try:
                    config = load_config(config_path)
                except ConfigError as err:  # validated before the swap, so only a changed environment
                    if not manager.pending:
                        raise
                    manager.rollback(f"the new config no longer loads: {err}")
                    manager.restart_requested.clear()
                    config = load_config(config_path)
            session = UpdateSession(manager, outer)
            started = time.monotonic()
            rc = run_fn(config, threading.Event(), updates=session, config_path=str(config_path), **kwargs)
            if outer.is_set():
                return rc
            if session.restart:
                log.info("run() restarting for the update (ran %.1f s)", time.monotonic() - started)
                continue
            if rc != 0 and manager.pending:  # the new config crashed the appliance: back to the old one
                manager.rollback(f"edge run exited with code {rc}")
                continue
            return rc
    finally:
        manager.close()
