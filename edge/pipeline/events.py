"""Every event one camera's pipeline produces is built here, from typed inputs.

Events leave the pipeline unstamped (``device`` empty, ``seq`` 0): the :class:`EventBus` is
the only place that stamps them. ``pos`` (seconds into the source video) is set when the
pipeline knows the video's origin, i.e. in replays; ``ts`` is always the frame's capture time.
"""

from __future__ import annotations

from typing import Any

from edge.config import LineConfig, ZoneConfig
from edge.events.schema import Event, utc_iso
from edge.plates.stage import PlateUpdate
from edge.tracking import Track
from edge.tracking.lines import Crossing
from edge.tracking.scene import SceneChange
from edge.tracking.zones import ZoneChange


class EventBuilder:
    """Builds the events of camera ``camera``; ``origin`` (epoch s of the video's pts 0) adds ``pos``."""

    def __init__(self, camera: str, origin: float | None = None) -> None:
        self.camera = camera
        self.origin = origin

    def new(self, kind: str, phase: str | None, ts: float, t: Track | None = None, **fields: Any) -> Event:
        """An event of this camera at ``ts``; about track ``t`` (id, label, zones, start) when given."""
        if t is not None:
            fields = {
                "track": t.id,
                "label": t.label,
                "zones": list(t.state.zones),
                "start": utc_iso(t.first_seen),
                **fields,
            }
        pos = None if self.origin is None else round(max(0.0, ts - self.origin), 3)
        return Event(
            device="",  # stamped by the EventBus
            camera=self.camera,
            type=kind,  # type: ignore[arg-type]
            phase=phase,  # type: ignore[arg-type]
            ts=utc_iso(ts),
            pos=pos,
            **fields,
        )

    def track(self, phase: str, t: Track, now: float) -> Event:
        """A ``track`` start/update/end event: type, colour and plate so far; duration on end."""
        attrs = describe(t)
        if phase == "end":
            attrs["duration"] = round(t.last_seen - t.first_seen, 2)
        score = (t.state.best_score or t.score) if phase == "end" else t.score
        ts = t.last_seen if phase == "end" else now
        return self.new("track", phase, ts, t, score=float(score), box=[float(v) for v in t.last_box], attrs=attrs)

    def plate(self, t: Track, update: PlateUpdate, now: float) -> Event:
        """A ``plate`` event; ``attrs.list`` names the list the plate is on (the rule engine's
        ``plate_watch`` rule raises the anomaly from it)."""
        attrs: dict[str, Any] = {**update.fields, "conf": round(update.confidence, 3), "reads": update.reads}
        if update.candidates:
            attrs["candidates"] = [[c, round(p, 3)] for c, p in update.candidates]
        kind = t.top_attr("type")
        if kind:
            attrs["type"] = kind
        if update.listed is not None:
            attrs["list"] = update.listed
        return self.new("plate", "start" if update.first else "update", now, t, box=update.box, attrs=attrs)

    def line(self, t: Track, c: Crossing, cfg: LineConfig) -> Event:
        """A ``line`` event: track ``t`` crossed a counting line (``ts`` is the crossing time)."""
        attrs: dict[str, Any] = {"line": c.line, "dir": c.dir}
        if cfg.road is not None:
            attrs["road"] = cfg.road
        if cfg.role is not None:
            attrs["role"] = cfg.role
        return self.new("line", None, c.at, t, attrs={**attrs, **describe(t)})

    def zone(self, t: Track, c: ZoneChange, cfg: ZoneConfig | None) -> Event:
        """A ``zone`` event: ``start`` when ``t`` entered, ``end`` (with ``dwell``) when it left."""
        attrs: dict[str, Any] = {"zone": c.zone}
        if cfg is not None and cfg.role is not None:
            attrs["role"] = cfg.role
        attrs["occupancy"] = c.occupancy
        if c.dwell is not None:
            attrs["dwell"] = c.dwell
        attrs.update({k: v for k, v in describe(t).items() if not k.startswith("color")})
        return self.new("zone", c.phase, c.at, t, box=[float(v) for v in t.last_box], attrs=attrs)

    def state(self, c: SceneChange) -> Event:
        """A ``state`` event of the whole-frame classifier."""
        attrs: dict[str, Any] = {"duration": round(c.duration, 2)} if c.phase == "end" else {}
        return self.new("state", c.phase, c.at, label=c.label, score=c.score, start=utc_iso(c.since), attrs=attrs)


UNKNOWN = "unknown"
# the top value's share of all the weight a track's votes gave; under this it is "unknown"
# (a confident wrong type is worse than none: rules by type act on it)
MIN_CONFIDENCE = {"type": 0.5, "color": 0.4}


def describe(t: Track) -> dict[str, Any]:
    """The descriptive attrs every event about a vehicle carries: type and color, each with its
    confidence (``type_confidence``, ``color_confidence``; ``unknown`` when no value reaches
    ``MIN_CONFIDENCE``), plate fields."""
    attrs: dict[str, Any] = {}
    for key in ("type", "color"):
        votes = t.attr_votes.get(key)
        total = sum(votes.values()) if votes else 0.0
        if not votes or total <= 0:
            continue
        value, weight = max(votes.items(), key=lambda kv: kv[1])
        confidence = weight / total
        attrs[key] = value if confidence >= MIN_CONFIDENCE[key] else UNKNOWN
        attrs[f"{key}_confidence"] = round(confidence, 2)
    attrs.update(t.state.plate)
    return attrs
