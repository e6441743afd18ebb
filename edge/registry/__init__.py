"""Model registry: manifests in ``models/``, pulled by name from a mirror or upstream, sha256-checked."""

from edge.registry.manifest import BuildSpec, InputSpec, Manifest, ModelFile, find_manifest, list_manifests
from edge.registry.pull import ensure_model, model_path, pull

__all__ = [
    "BuildSpec",
    "InputSpec",
    "Manifest",
    "ModelFile",
    "ensure_model",
    "find_manifest",
    "list_manifests",
    "model_path",
    "pull",
]
