"""One camera's pipeline: ``line`` (the straight line, :class:`Pipeline`), ``describe`` (vehicle
type and colour vote) and ``events`` (every event it produces)."""

from edge.pipeline.line import Pipeline, PipelineStats

__all__ = ["Pipeline", "PipelineStats"]
