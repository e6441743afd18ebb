"""The config schema, one module per section (see :mod:`edge.config` for the map)."""
