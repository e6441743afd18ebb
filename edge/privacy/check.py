"""``edge config check`` for a camera's ``privacy:`` models: a detector or segmenter name the
registry does not know, or a model that cannot do the job (no person label, not a segmentation
model), is a config error naming the field, not a picture withheld at run time.

Reads only the model manifests (no numpy, no weights)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PERSON_LABELS = frozenset({"person", "pedestrian"})

Loc = tuple[int | str, ...]


def privacy_problems(camera: str, privacy: Any, labels_of: Callable[[str], list[str] | None]) -> list[tuple[Loc, str]]:
    """(field path, message) for each ``cameras.<camera>.privacy`` model that cannot be used.
    ``labels_of(model)`` gives a model's labels (None when not knowable here).

    Only names the config writes are checked: the defaults are registry models
    (tests/test_privacy_config.py), and a site with its own model folder need not carry them."""
    written = privacy.model_fields_set & {"detector", "segmenter"}
    if not written:
        return []
    from edge.registry.manifest import list_manifests

    known = {m.name: m for m in list_manifests()}
    where = ("cameras", camera, "privacy")
    out: list[tuple[Loc, str]] = []
    if "detector" in written:
        problem = _wrong_task(privacy.detector, "detect", "a person detector", known)
        if problem is None:
            labels = known[privacy.detector].labels or labels_of(privacy.detector)
            if labels is not None and not PERSON_LABELS & set(labels):
                problem = f"model {privacy.detector!r} has no person label"
        if problem:
            fit = (n for n, m in known.items() if m.task == "detect" and _finds_people(m, labels_of))
            out.append(((*where, "detector"), f"{problem}; use one of: {', '.join(sorted(fit))}"))
    if "segmenter" in written:
        problem = _wrong_task(privacy.segmenter, "segment", "a segmentation model", known)
        if problem:
            fit = (n for n, m in known.items() if m.task == "segment")
            out.append(((*where, "segmenter"), f"{problem}; use one of: {', '.join(sorted(fit))}"))
    return out


def _finds_people(m: Any, labels_of: Callable[[str], list[str] | None]) -> bool:
    """Whether manifest ``m``'s labels include a person."""
    return bool(PERSON_LABELS & set(m.labels or labels_of(m.name) or ()))


def _wrong_task(name: str, task: str, what: str, known: dict[str, Any]) -> str | None:
    """Why registry model ``name`` cannot be ``what`` (None when it has the right task)."""
    if name not in known:
        return f"unknown model {name!r}"
    if known[name].task != task:
        return f"model {name!r} is a {known[name].task} model, not {what}"
    return None
