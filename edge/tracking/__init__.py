"""Tracking: a ByteTrack-style multi-object tracker, zones and object filters."""

from edge.tracking.tracker import Track, Tracker, TrackChange

__all__ = ["Track", "TrackChange", "Tracker"]
