"""Tracking: a ByteTrack-style multi-object tracker, zones and object filters."""

from edge.tracking.tracker import Track, TrackChange, Tracker

__all__ = ["Track", "TrackChange", "Tracker"]
