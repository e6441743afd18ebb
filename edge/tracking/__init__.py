"""Tracking: a ByteTrack-style multi-object tracker, per-track state, zones, lines and filters."""

from edge.tracking.state import TrackState
from edge.tracking.tracker import Track, Tracker

__all__ = ["Track", "TrackState", "Tracker"]
