"""Anomaly lifecycle: one situation raises one anomaly.

Each anomaly is keyed by (rule, subject): repeats update it instead of raising another.
raised (phase start) -> updated (phase update) -> acked (phase update) -> resolved (phase end),
resolved automatically when the condition clears or by the operator. Open anomalies are
written to the store on every change and reloaded on start.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from edge.events.schema import Event, new_event_id, utc_iso
from edge.rules.store import Store

State = Literal["raised", "updated", "acked", "resolved"]
MAX_EVIDENCE = 20


@dataclass
class Anomaly:
    """One open (or just resolved) situation."""

    id: str
    rule: str
    kind: str
    severity: str
    subject: str
    camera: str
    reason: str
    raised: float
    updated: float
    state: State = "raised"
    visit: str | None = None
    tracks: list[int] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    snapshot: str | None = None
    by: str = "auto"
    count: int = 1

    def to_event(self, phase: Literal["start", "update", "end"], at: float) -> Event:
        """The ``anomaly`` event (attrs as in docs/events.md, plus subject, count, raised_at)."""
        attrs: dict[str, Any] = {
            "anomaly": self.id,
            "rule": self.rule,
            "kind": self.kind,
            "severity": self.severity,
            "state": self.state,
            "reason": self.reason,
            "visit": self.visit,
            "tracks": list(self.tracks),
            "evidence": list(self.evidence),
            "snapshot": self.snapshot,
            "by": self.by,
            "subject": self.subject,
            "count": self.count,
            "raised_at": utc_iso(self.raised),
        }
        return Event(
            device="", camera=self.camera, type="anomaly", phase=phase, ts=utc_iso(at),
            track=self.tracks[0] if self.tracks else None,
            attrs={k: v for k, v in attrs.items() if v is not None and v != []},
        )  # fmt: skip


@dataclass(frozen=True)
class Raise:
    """What a rule reports: the situation and what it is about."""

    rule: str
    kind: str
    severity: str
    subject: str
    camera: str
    reason: str
    visit: str | None = None
    track: int | None = None
    evidence: str | None = None
    snapshot: str | None = None


class AnomalyBook:
    """Open anomalies by key and by id, mirrored in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.by_key: dict[tuple[str, str], Anomaly] = {}
        self._last_raised: dict[tuple[str, str], float] = {}  # for cool-downs
        fields = {f.name for f in dataclasses.fields(Anomaly)}
        for row in store.load_open("anomalies"):
            a = Anomaly(**{k: v for k, v in row.items() if k in fields})
            self.by_key[(a.rule, a.subject)] = a

    def open_anomalies(self) -> list[Anomaly]:
        """Every open anomaly."""
        return list(self.by_key.values())

    def find(self, anomaly_id: str) -> Anomaly | None:
        """An open anomaly by id."""
        return next((a for a in self.by_key.values() if a.id == anomaly_id), None)

    def is_open(self, rule: str, subject: str) -> bool:
        """Whether (rule, subject) has an open anomaly."""
        return (rule, subject) in self.by_key

    def raise_(self, r: Raise, at: float, cooldown: float = 0.0) -> list[Event]:
        """Raise a new anomaly or update the open one for the same (rule, subject)."""
        key = (r.rule, r.subject)
        a = self.by_key.get(key)
        if a is None:
            last = self._last_raised.get(key)
            if last is not None and cooldown and at - last < cooldown:
                return []
            a = Anomaly(
                id=new_event_id(), rule=r.rule, kind=r.kind, severity=r.severity, subject=r.subject,
                camera=r.camera, reason=r.reason, raised=at, updated=at, visit=r.visit,
                tracks=[r.track] if r.track is not None else [], evidence=[r.evidence] if r.evidence else [],
                snapshot=r.snapshot,
            )  # fmt: skip
            self.by_key[key] = a
            self._last_raised[key] = at
            self._save(a)
            return [a.to_event("start", at)]
        # A repeat: only news is worth an update event: a new track, a new reason, or a new
        # event when the situation has no tracks (the same track's plate re-reads are not news).
        new_track = r.track is not None and r.track not in a.tracks
        new_event = r.track is None and bool(r.evidence) and r.evidence not in a.evidence
        if not (new_track or new_event or r.reason != a.reason):
            return []
        at = max(at, a.updated)  # a late event (a track's end) never dates a change before the last one
        if r.track is not None and r.track not in a.tracks:
            a.tracks.append(r.track)
        if r.evidence and r.evidence not in a.evidence:
            a.evidence = (a.evidence + [r.evidence])[-MAX_EVIDENCE:]
        a.reason, a.visit = r.reason, a.visit or r.visit
        a.snapshot = a.snapshot or r.snapshot
        a.count += 1
        a.updated = at
        if a.state != "acked":  # an acked anomaly stays acked: the operator has seen it
            a.state = "updated"
        self._save(a)
        return [a.to_event("update", at)]

    def clear(self, rule: str, subject: str, at: float, by: str = "auto") -> list[Event]:
        """Resolve (rule, subject) if open: the condition cleared."""
        a = self.by_key.get((rule, subject))
        return [] if a is None else self._resolve(a, at, by)

    def ack(self, anomaly_id: str, at: float, by: str) -> list[Event]:
        """Operator acknowledgement. KeyError: unknown id; ValueError: already resolved."""
        a = self._get(anomaly_id)
        if a.state == "acked":
            return []
        at = max(at, a.updated)
        a.state, a.by, a.updated = "acked", by, at
        self._save(a)
        return [a.to_event("update", at)]

    def resolve(self, anomaly_id: str, at: float, by: str) -> list[Event]:
        """Operator resolution. KeyError: unknown id; ValueError: already resolved."""
        return self._resolve(self._get(anomaly_id), at, by)

    def expire(self, now: float, resolve_after: dict[str, float]) -> list[Event]:
        """Auto-resolve one-off anomalies quiet for their rule's ``resolve_after``."""
        out: list[Event] = []
        if not resolve_after:
            return out
        for a in list(self.by_key.values()):
            limit = resolve_after.get(a.rule)
            if limit is not None and now - a.updated >= limit:
                out += self._resolve(a, now, "auto")
        return out

    def _get(self, anomaly_id: str) -> Anomaly:
        a = self.find(anomaly_id)
        if a is not None:
            return a
        row = self.store.get("anomalies", anomaly_id)
        if row is None:
            raise KeyError(anomaly_id)
        raise ValueError("already resolved")

    def _resolve(self, a: Anomaly, at: float, by: str) -> list[Event]:
        at = max(at, a.updated)  # resolved never before raised (or the last update)
        a.state, a.by, a.updated = "resolved", by, at
        del self.by_key[(a.rule, a.subject)]
        self._save(a)
        return [a.to_event("end", at)]

    def _save(self, a: Anomaly) -> None:
        self.store.put("anomalies", a.id, vars(a), is_open=a.state != "resolved", updated=a.updated)
