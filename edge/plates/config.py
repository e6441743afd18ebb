"""Plate stage configuration: the ``plates:`` section of a camera, defined with the rest of the
config tree in :mod:`edge.config` (one tree, defaults in one place) and re-exported here."""

from edge.config import PlateConsensusConfig, PlateListsConfig, PlatesConfig

__all__ = ["PlateConsensusConfig", "PlateListsConfig", "PlatesConfig"]
