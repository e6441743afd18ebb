"""The plate stage as the pipeline uses it: reader, per-track consensus, lists and the privacy
setting built once from a camera's ``plates:`` config."""

from __future__ import annotations

from typing import Any

from edge.config import AppConfig, PlatesConfig
from edge.plates.consensus import PlateConsensus
from edge.plates.lists import PlateLists, publish_fields
from edge.plates.reader import PlateReader

# plates are read on these vehicle types only (a detector's "vehicle" label defers to the type vote)
PLATED_TYPES = {"car", "van", "truck", "bus", "motorcycle"}


class PlateStage:
    """Owns the models and per-track state of plate reading for one camera."""

    def __init__(self, cfg: PlatesConfig, app: AppConfig) -> None:
        self.cfg = cfg
        self.reader = PlateReader(cfg, **app.model_options())
        self.backend = self.reader.backend
        self.consensus = PlateConsensus(cfg.consensus, cfg.min_confidence)
        self.lists = PlateLists(cfg.lists)
        self._salt = cfg.hash_salt.get_secret_value() if cfg.hash_salt else None

    def wants(self, track: Any, vehicle_labels: set[str], frame_height: int) -> bool:
        """Read this track now? Vehicles big enough to read, at most ``reads_per_track`` times."""
        if track.label not in vehicle_labels:
            return False
        box = track.last_box
        if (box[3] - box[1]) * frame_height < self.cfg.min_vehicle_height:
            return False
        kind = track.top_attr("type")
        if kind is not None and kind not in PLATED_TYPES:
            return False
        return int(track.data.get("plate_reads", 0)) < self.cfg.reads_per_track

    def fields(self, text: str) -> dict[str, str]:
        """``plate`` and/or ``plate_hash`` as the privacy setting says."""
        return publish_fields(text, self.cfg.publish, self._salt)
