"""Rules checked against the rest of the device config: a rule that names a camera, zone, line,
road, class label or vehicle type the appliance cannot produce would never fire, silently.

Labels come from the model registry (the manifest's inline labels, its attribute outputs, or its
labels file in the model cache or a folder mirror), never from loading weights; when a model's
labels are not on this machine yet, its labels are not checked.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.rules.config import (
    Condition,
    ConditionRule,
    LoiteringRule,
    OccupancyRule,
    OverstayRule,
    PlateWatchRule,
    RuleBase,
    StateHeldRule,
    TypeNotAllowedRule,
    WrongRoadRule,
)
from edge.tracking.scene import NONE

if TYPE_CHECKING:  # edge.config imports this module's package: no run-time import back
    from edge.config import AppConfig, CameraConfig
    from edge.registry.manifest import Manifest

Loc = tuple[int | str, ...]
PLATE_LISTS = ("allow", "watch")  # edge.config.PlateListsConfig: the lists a plate event can name
_ZONE_FIELD = re.compile(r"attrs\.zone|zones\.\d+")
_ROAD_FIELDS = {"attrs.road", "attrs.road_in", "attrs.road_out"}


def config_problems(app: AppConfig) -> list[tuple[Loc, str]]:
    """(field path, message) for every rule field naming something the config does not have,
    every ``detect.classifier_labels`` entry its model cannot produce, and every ``privacy``
    model that is unknown or cannot do its job."""
    from edge.privacy.check import privacy_problems

    site = Site.of(app)
    out: list[tuple[Loc, str]] = []
    for name, cam in app.cameras.items():
        out += privacy_problems(name, cam.privacy, site.model_labels)
        labels = site.model_labels(cam.detect.classifier_model)
        for i, label in enumerate(cam.detect.classifier_labels):
            if labels is not None and label not in labels:
                where = ("cameras", name, "detect", "classifier_labels", i)
                out.append((where, _not_a_label(label, cam.detect.classifier_model or "", [name], labels)))
    for rid, rule in app.rules.rules.items():
        out += [(("rules", "rules", rid, rule.kind, *loc), msg) for loc, msg in site.check(rule)]
    return out


@dataclass
class Site:
    """What the cameras of one device can report: names, zones, lines, roads, types, states."""

    cameras: dict[str, CameraConfig]
    cache_dir: Path | None = None
    mirror: str | None = None
    _labels: dict[str, list[str] | None] = field(default_factory=dict)

    @classmethod
    def of(cls, app: AppConfig) -> Site:
        """The site of ``app`` (its models found through its cache and mirror settings)."""
        return cls(dict(app.cameras), app.models.cache_dir, app.models.mirror)

    # -- vocabularies ---------------------------------------------------------------------------
    def scope(self, rule: RuleBase) -> list[str]:
        """The cameras a rule applies to (unknown names left out: reported on their own)."""
        return [c for c in rule.cameras if c in self.cameras] if rule.cameras else list(self.cameras)

    def roads(self) -> set[str]:
        """``road_in``/``road_out`` a visit can have: roads of entry/exit lines, entry/exit zone names."""
        out = set()
        for cam in self.cameras.values():
            out |= {ln.road for ln in cam.lines.values() if ln.role and ln.road}
            out |= {name for name, z in cam.zones.items() if z.role in ("entry", "exit")}
        return out

    def types(self, cams: Iterable[str]) -> set[str]:
        """Vehicle types: the ``objects.vehicle_types`` vocabulary plus the attribute model's own, and
        ``unknown`` (published when the type's confidence is too low; a rule may list it on purpose)."""
        out: set[str] = {"unknown"}
        for name in cams:
            objects = self.cameras[name].objects
            out |= set(objects.vehicle_types)
            to_type = {src: kind for kind, srcs in objects.vehicle_types.items() for src in srcs}
            values = self._manifest_attr(self.cameras[name].detect.attributes_model, "type")
            out |= {to_type.get(v, v) for v in values}
        return out

    def model_labels(self, model: str | None) -> list[str] | None:
        """Labels of registry model ``model`` without loading it; None when not knowable here."""
        if not model:
            return None
        if model not in self._labels:
            self._labels[model] = self._read_labels(model)
        return self._labels[model]

    # -- checks ---------------------------------------------------------------------------------
    def check(self, rule: Any) -> list[tuple[Loc, str]]:
        """Problems of one rule, as (path below the rule, message)."""
        out: list[tuple[Loc, str]] = [
            (("cameras", i), f"unknown camera {c!r}; cameras: {', '.join(self.cameras)}")
            for i, c in enumerate(rule.cameras)
            if c not in self.cameras
        ]
        cams = self.scope(rule)
        if isinstance(rule, LoiteringRule | TypeNotAllowedRule):
            out += self._names(("zones",), rule.zones, self._zones(cams), f"a zone of {_cams(cams)}")
        if isinstance(rule, OccupancyRule):
            out += self._names(("zone",), [rule.zone], self._zones(cams), f"a zone of {_cams(cams)}", listed=False)
        if isinstance(rule, LoiteringRule | TypeNotAllowedRule | OverstayRule):
            out += self._names(("types",), rule.types, self.types(cams), f"a vehicle type of {_cams(cams)}")
        if isinstance(rule, WrongRoadRule):
            out += self._roads(rule)
            out += self._names(("by_type",), list(rule.by_type), self.types(cams), "a vehicle type", listed=False)
        if isinstance(rule, StateHeldRule):
            out += self._state(rule.label, cams)
        if isinstance(rule, PlateWatchRule):  # plate events name the plates.lists entry that matched
            out += self._names(("list",), [rule.list], set(PLATE_LISTS), "a plate list", listed=False)
        if isinstance(rule, ConditionRule):
            out += list(self._condition(rule.when, ("when",), cams))
        return out

    def _names(
        self, loc: Loc, names: list[str], known: set[str], what: str, listed: bool = True
    ) -> list[tuple[Loc, str]]:
        """``names`` that are not in ``known`` (``listed``: the field is a list, paths get indices)."""
        return [
            ((*loc, i) if listed else loc, f"{n!r} is not {what}; {_choices(known)}")
            for i, n in enumerate(names)
            if n not in known
        ]

    def _roads(self, rule: WrongRoadRule) -> list[tuple[Loc, str]]:
        roads = self.roads()
        what = "a road of an entry or exit line (lines.*.road) or zone"
        out: list[tuple[Loc, str]] = []
        tables: list[tuple[Loc, dict[str, list[str]]]] = [(("allowed",), rule.allowed)]
        tables += [(("by_type", t), table) for t, table in rule.by_type.items()]
        for loc, table in tables:
            for road_in, outs in table.items():
                out += self._names((*loc, road_in), [road_in], roads, what, listed=False)
                out += self._names((*loc, road_in), outs, roads, what)
        return out

    def _state(self, label: str, cams: list[str]) -> list[tuple[Loc, str]]:
        """A state_held label must be a state some camera in scope can report."""
        runs = [c for c in cams if self.cameras[c].detect.classifier_model]
        if not runs:
            return [(("label",), f"state {label!r} never occurs: no camera it applies to ({_cams(cams)}) runs a "
                                 "whole-frame classifier (detect.classifier_model)")]  # fmt: skip
        problems = []
        for c in runs:
            d = self.cameras[c].detect
            if d.classifier_labels:  # only these are reported; the rest is the "none" state
                if label in (*d.classifier_labels, NONE):
                    return []
                problems.append(f"{label!r} is not one of detect.classifier_labels of camera {c} (nor {NONE!r}); "
                                f"{_choices(set(d.classifier_labels) | {NONE})}")  # fmt: skip
                continue
            labels = self.model_labels(d.classifier_model)
            if labels is None or label in labels or label == NONE:
                return []  # knowable only once the model is here, or a label it has
            problems.append(_not_a_label(label, d.classifier_model or "", [c], labels))
        return [(("label",), problems[0] if len(problems) == 1 else "; ".join(problems))]

    def _condition(self, cond: Condition, loc: Loc, cams: list[str]) -> Iterator[tuple[Loc, str]]:
        """Tests comparing ``camera``, a zone, a line or a road with names that do not exist."""
        for key, subs in (("all", cond.all), ("any", cond.any)):
            for i, sub in enumerate(subs or []):
                yield from self._condition(sub, (*loc, key, i), cams)
        if cond.not_ is not None:
            yield from self._condition(cond.not_, (*loc, "not"), cams)
        if cond.field is None or cond.op not in ("eq", "ne", "in", "not_in"):
            return
        f = cond.field
        if f == "camera":
            known, what = set(self.cameras), "a camera"
        elif _ZONE_FIELD.fullmatch(f):
            known, what = self._zones(cams), f"a zone of {_cams(cams)}"
        elif f == "attrs.line":
            known, what = {n for c in cams for n in self.cameras[c].lines}, f"a line of {_cams(cams)}"
        elif f in _ROAD_FIELDS:
            known, what = self.roads(), "a road of an entry or exit line or zone"
        else:
            return
        values = cond.value if isinstance(cond.value, list) else [cond.value]
        for i, v in enumerate(values):
            if str(v) not in known:
                yield ((*loc, "value", i) if isinstance(cond.value, list) else (*loc, "value"),
                       f"{v!r} is not {what} ({f}); {_choices(known)}")  # fmt: skip

    # -- the registry ---------------------------------------------------------------------------
    def _zones(self, cams: Iterable[str]) -> set[str]:
        return {z for c in cams for z in self.cameras[c].zones}

    def _manifest(self, model: str | None) -> Manifest | None:
        from edge.errors import ModelError
        from edge.registry.manifest import find_manifest

        if not model:
            return None
        try:
            return find_manifest(model)
        except ModelError:
            return None  # an unknown model fails where it is loaded, with the known names

    def _manifest_attr(self, model: str | None, output: str) -> list[str]:
        m = self._manifest(model)
        outputs = m.head.outputs if m is not None else None
        return list(outputs.get(output, [])) if outputs is not None else []

    def _read_labels(self, model: str) -> list[str] | None:
        from edge.errors import ModelError
        from edge.registry.pull import default_cache_dir, default_mirror

        m = self._manifest(model)
        if m is None:
            return None
        if m.labels is not None or m.labels_file is None:
            return list(m.labels or []) or None
        mirror = self.mirror or default_mirror()
        folders = [(self.cache_dir or default_cache_dir()) / model]
        if mirror and "://" not in mirror:
            folders.append(Path(mirror).expanduser() / model)
        for folder in folders:
            try:  # a path the OS refuses (too long, no permission) is a folder without the file
                if not (folder / m.labels_file).is_file():
                    continue
                return [x for x in m.read_labels(folder) if x]
            except (ModelError, OSError):
                return None
        return None  # not pulled yet: checked once it is


def _cams(cams: list[str]) -> str:
    return f"camera{'s' if len(cams) != 1 else ''} {', '.join(cams)}" if cams else "no camera"


def _choices(known: set[str]) -> str:
    if not known:
        return "there are none"
    names = sorted(known)
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
    return f"known: {shown}"


def _not_a_label(label: str, model: str, cams: list[str], labels: list[str]) -> str:
    """``'no_taxi' is not a label of model M (cameras C); labels include 'cab, hack, taxi, taxicab', ...``."""
    words = [w for w in re.split(r"[\s_,\-]+", label.lower()) if len(w) >= 3]
    near = [x for x in labels if any(w in re.split(r"[\s_,\-]+", x.lower()) for w in words)]
    near += [x for x in difflib.get_close_matches(label, labels, n=3, cutoff=0.6) if x not in near]
    shown = near[:3] or labels[:5]
    return (
        f"{label!r} is not a label of model {model} ({_cams(cams)}); labels include "
        f"{', '.join(repr(x) for x in shown)} ({len(labels)} labels)"
    )
