"""Resolve and verify the models an update names before the update is acknowledged or swapped in.

A model reference that the registry does not know, whose files are missing or corrupt (and not
pullable from the configured mirror or upstream), whose entry file does not have the signed
sha256, whose task does not fit the field, or that its backend cannot load would otherwise be
acknowledged and then crash the cameras until the health check rolls it back. Here it is a
refusal naming the field and the model, and the running config is not touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge.config import AppConfig
from edge.registry.pull import sha256_of
from edge.update.schema import FIELD_TASKS, MODEL_FIELDS

if TYPE_CHECKING:
    from edge.inference.pool import ModelPool

log = logging.getLogger("edge.update")


class ModelRefused(Exception):
    """A model of an update cannot be used; the message names the field and the model."""


@dataclass(frozen=True)
class ModelUse:
    """One model an update would run: ``where`` names the field that asks for it."""

    name: str
    field: str  # model, attributes_model or classifier_model
    where: str  # e.g. model.ref or cameras.gate.detect.model
    sha256: str | None = None  # the signed sha256 of its entry file, if any


def models_in(cfg: AppConfig) -> dict[str, ModelUse]:
    """Every model the enabled cameras of ``cfg`` name (first use of each name)."""
    found: dict[str, ModelUse] = {}
    for cam_name, cam in cfg.cameras.items():
        if not cam.enabled:
            continue
        for field in MODEL_FIELDS:
            name = getattr(cam.detect, field)
            if name and name not in found:
                found[name] = ModelUse(name, field, f"cameras.{cam_name}.detect.{field}")
    return found


def verify(cfg: AppConfig, uses: list[ModelUse], pool: ModelPool | None = None) -> tuple[list[Any], dict[str, str]]:
    """Pull (sha256-checked, from ``cfg``'s mirror or upstream), check and load every model in
    ``uses`` the way ``edge run`` will, in ``pool`` (``edge run``: the running App's; a library
    caller without one: the process's default pool). Returns the loaded models (hold them until
    the new config runs: it then finds them loaded when it runs in the same pool) and each
    model's entry-file sha256. Raises :class:`ModelRefused`."""
    from edge.inference.model import load_model
    from edge.inference.pool import default_pool
    from edge.registry import find_manifest

    pool = pool or default_pool()
    opts: dict[str, Any] = {**cfg.model_options(), "pool": pool}
    opts["progress"] = lambda line: log.info("update: %s", line)
    held: list[Any] = []
    sums: dict[str, str] = {}
    for use in uses:
        prefix = f"{use.where}: model {use.name!r}"
        try:
            manifest = find_manifest(use.name)
            need = FIELD_TASKS[use.field]
            if manifest.task != need:
                raise ModelRefused(f"{prefix} is a {manifest.task} model; detect.{use.field} needs a {need} model")
            got, folder = pool.ensure_model(
                use.name, cache_dir=opts["cache_dir"], mirror=opts["mirror"], progress=opts["progress"]
            )
            sums[use.name] = sha256_of(folder / got.entry)
            if use.sha256 is not None and sums[use.name] != use.sha256:
                raise ModelRefused(
                    f"{prefix}: its file {got.entry} has sha256 {sums[use.name][:16]}..., "
                    f"not the signed {use.sha256[:16]}..."
                )
            held.append(load_model(use.name, **opts))
        except ModelRefused:
            raise
        except Exception as err:  # noqa: BLE001 - registry, download and backend errors alike refuse
            detail = " ".join(str(err).split()) or type(err).__name__  # one line
            raise ModelRefused(f"{prefix}: {detail}"[:1000]) from None
        log.info("update: model %s verified (%s, sha256 %s)", use.name, use.where, sums[use.name][:12])
    return held, sums
