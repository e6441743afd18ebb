"""Counts over time on the device: per camera and wall-clock interval, line crossings by direction
and vehicle type and zone occupancy/dwell, published as one ``count`` event per interval
(docs/events.md). The open interval survives kill -9 (:mod:`edge.counts.store`)."""

from edge.counts.detail import DetailSink, keeps
from edge.counts.processor import STORE_NAME, CountProcessor, build_counter

__all__ = ["STORE_NAME", "CountProcessor", "DetailSink", "build_counter", "keeps"]
