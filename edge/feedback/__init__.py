"""Operator feedback: corrected labels with the event and crop they refer to, for retraining."""

from edge.feedback.store import FeedbackRow, FeedbackStore, SnapshotStore, default_db_path

__all__ = ["FeedbackRow", "FeedbackStore", "SnapshotStore", "default_db_path"]
