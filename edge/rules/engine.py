"""The rule engine: events in, visit and anomaly events out (an :class:`edge.events.bus.Processor`).

Data flows one way: an event updates the visits, the visit changes and the event go to every
rule, the rules raise or clear anomalies, and all resulting events are returned to the bus.
One lock serialises everything, since cameras emit from several threads. "Now" is the
triggering event's ``ts`` or tick's ``now``; the clock only times operator actions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.clock import Clock
from edge.events.schema import Event, epoch
from edge.rules import kinds
from edge.rules.anomalies import AnomalyBook
from edge.rules.config import RulesConfig
from edge.rules.store import Store
from edge.rules.visits import VisitBook, VisitChange

if TYPE_CHECKING:  # edge.config imports edge.rules.config: no run-time import back
    from edge.config import AppConfig
    from edge.events.bus import Processor

log = logging.getLogger("edge.rules")
LOG_EVERY = 60.0  # s between log lines about the same failing rule
PRUNE_EVERY = 3600.0
TICK_EVERY = 1.0  # s of event time between tick work: replays tick per frame, rules need seconds
STORE_NAME = "edge-rules.sqlite3"


class RuleEngine:
    """Visits and anomaly rules over one device's (or many devices') event stream."""

    def __init__(self, cfg: RulesConfig, *, store_path: Path | None, clock: Clock, settle: float = 0.0) -> None:
        """``settle``: seconds of event time a tick waits before judging (see :func:`settle_seconds`)."""
        self.settle = max(0.0, settle)
        self._lock = threading.RLock()
        self.clock = clock
        self.store = Store(store_path)
        self.visits = VisitBook(cfg.visits, self.store)
        self.anomalies = AnomalyBook(self.store)
        self.errors: dict[str, int] = {}  # rule id -> run-time failures
        self._logged: dict[str, float] = {}
        self._rules: list[kinds.RuleKind[Any]] = []
        self._last_prune = float("-inf")
        self._last_tick = float("-inf")
        self.cfg = cfg
        self._install(cfg)

    # --- Processor --------------------------------------------------------------------------

    def process(self, event: Event) -> list[Event]:
        """Visits and anomalies derived from one delivered event (own visit/anomaly events ignored)."""
        if event.type in ("visit", "anomaly"):
            return []
        try:
            t = epoch(event.ts)
        except ValueError:
            t = self.clock.now()
        with self._lock:
            ctx = self._context()
            for change in self._guard("visits", self.visits.handle, event, t) or []:
                self._visit_changed(change, ctx)
            for rule in self._rules:
                if rule.cfg.applies_to(event.camera):
                    self._guard(rule.cfg.id, rule.on_event, event, t, ctx)
            if event.pos is None:
                return ctx.out
            # in a replay, what an event caused happened at its position in the video too
            return [e if e.pos is not None else e.model_copy(update={"pos": event.pos}) for e in ctx.out]

    def tick(self, now: float) -> list[Event]:
        """Time-based rules: unresolved visits, overstay, loitering, state_held, deadlines, expiry.

        They judge the moment ``settle`` s before ``now``: an event about an earlier moment (an
        exit crossing or a state change reported late) must reach them first, or an overstay would
        be raised after the vehicle left."""
        with self._lock:
            if now < self._last_tick + TICK_EVERY:
                return []
            self._last_tick = now
            now -= self.settle
            ctx = self._context()
            for change in self._guard("visits", self.visits.tick, now) or []:
                self._visit_changed(change, ctx)
            for rule in self._rules:
                self._guard(rule.cfg.id, rule.on_tick, now, ctx)
            limits = {r.cfg.id: r.cfg.resolve_after for r in self._rules if r.cfg.resolve_after}
            ctx.out += self.anomalies.expire(now, limits)
            if now - self._last_prune >= PRUNE_EVERY:
                self._last_prune = now
                self.store.prune(now)
            return ctx.out

    # --- operator and lifecycle ---------------------------------------------------------------

    def ack(self, anomaly_id: str, by: str = "operator") -> list[Event]:
        """Acknowledge an open anomaly. KeyError: unknown id; ValueError: already resolved."""
        with self._lock:
            return self.anomalies.ack(anomaly_id, self.clock.now(), by)

    def resolve(self, anomaly_id: str, by: str = "operator") -> list[Event]:
        """Resolve an open anomaly. KeyError: unknown id; ValueError: already resolved."""
        with self._lock:
            return self.anomalies.resolve(anomaly_id, self.clock.now(), by)

    def reload(self, cfg: RulesConfig) -> None:
        """Swap the rules (SIGHUP); open visits and anomalies, and rules' timers, are kept."""
        with self._lock:
            self.cfg = cfg
            self.visits.cfg = cfg.visits
            self._install(cfg)

    def open_counts(self) -> dict[str, Any]:
        """``{"visits": n, "anomalies": {(rule, severity): n}, "errors": {rule: n}}`` (only
        pairs with open anomalies; see :meth:`rule_severities` for all configured ones)."""
        with self._lock:
            counts: dict[tuple[str, str], int] = {}
            for a in self.anomalies.open_anomalies():
                counts[(a.rule, a.severity)] = counts.get((a.rule, a.severity), 0) + 1
            return {"visits": len(self.visits.open), "anomalies": counts, "errors": dict(self.errors)}

    def rule_severities(self) -> list[tuple[str, str]]:
        """(rule, severity) of every active rule: metrics show them at 0 too."""
        with self._lock:
            return [(r.cfg.id, r.cfg.severity) for r in self._rules]

    def open_anomalies(self) -> list[dict[str, Any]]:
        """Open anomalies as their event attrs (for operator commands listing them)."""
        with self._lock:
            return [a.to_event("update", a.updated).attrs for a in self.anomalies.open_anomalies()]

    def close(self) -> None:
        """Close the store (everything is already committed)."""
        with self._lock:
            self.store.close()

    # --- internals ------------------------------------------------------------------------------

    def _context(self) -> kinds.Context:
        return kinds.Context(self.anomalies, lambda: self.visits.open, self.visits.cfg.enabled)

    def _visit_changed(self, change: VisitChange, ctx: kinds.Context) -> None:
        """Emit the visit event and show the change to the rules of its camera."""
        ve = change.to_event()
        ctx.out.append(ve)
        v = change.visit
        for rule in self._rules:
            if rule.cfg.applies_to(v.entry_camera) or (v.exit_camera and rule.cfg.applies_to(v.exit_camera)):
                self._guard(rule.cfg.id, rule.on_visit, change, ve, ctx)

    def _install(self, cfg: RulesConfig) -> None:
        old = {(r.cfg.id, r.kind): r for r in self._rules}
        rules: list[kinds.RuleKind[Any]] = []
        for rc in cfg.active():
            rule = self._guard(rc.id, kinds.build, rc, cfg.tz_for(rc))
            if rule is None:
                continue
            prev = old.get((rc.id, rule.kind))
            if prev is not None:
                rule.adopt(prev)
            rules.append(rule)
        self._rules = rules

    def _guard(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one rule's step: a failure is counted and logged (once a minute per rule), never raised."""
        try:
            return fn(*args)
        except Exception:
            self.errors[name] = self.errors.get(name, 0) + 1
            mono = time.monotonic()
            if mono - self._logged.get(name, float("-inf")) >= LOG_EVERY:
                self._logged[name] = mono
                log.exception("rule %s failed (%d errors so far)", name, self.errors[name])
            return None


def settle_seconds(app: AppConfig) -> float:
    """How late the pipeline may report a moment, in event time: a track's last crossing and zone
    end come ``tracker.max_age`` after its last sighting, a classifier state change
    ``classifier_min_frames`` classified frames after it began; plus a second for frame spacing."""
    late = [0.0]
    for cam in app.cameras.values():
        if not cam.enabled:
            continue
        late.append(cam.tracker.max_age)
        d = cam.detect
        if d.classifier_model:
            late.append(d.classifier_min_frames / (d.classifier_fps or d.fps))
    return max(late) + 1.0


def build_processors(app: AppConfig, clock: Clock, state_dir: Path | None, *, persist: bool = True) -> list[Processor]:
    """Every event-derived stage an app config asks for: the rule engine (unless
    ``rules.enabled`` is false), when a camera runs a frame classifier, screen-time totals, and
    count events of cameras with lines or zones (``counts``, state file beside the engine's).

    The engine's open visits and anomalies live in ``state_dir`` (default: beside the outbox);
    ``persist=False`` keeps them in memory, so a replay neither reads nor changes a device's state.
    """
    from edge.rules.screentime import ScreenTime  # a sibling processor, not part of the engine

    procs: list[Processor] = []
    if app.rules.enabled:
        directory = state_dir if state_dir is not None else Path(app.outbox.path).parent
        store = directory / STORE_NAME if persist else None
        procs.append(RuleEngine(app.rules, store_path=store, clock=clock, settle=settle_seconds(app)))
    if any(c.enabled and c.detect.classifier_model for c in app.cameras.values()):
        procs.append(ScreenTime(app.rules.screentime_period))
    from edge.counts import build_counter  # a sibling processor: count events per interval

    counter = build_counter(app, state_dir, persist=persist)
    if counter is not None:
        procs.append(counter)
    return procs
