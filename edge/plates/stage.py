"""The plate stage as the pipeline uses it: one call per vehicle track and frame.

``observe(track, image, now)`` decides whether to read the track's plate, reads it, feeds the
per-track consensus and answers with a :class:`PlateUpdate` when the published plate is new or
improved; ``finish(track)`` gives the final plate of an ending track if it changed. Reader,
consensus, lists and the privacy setting stay inside.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from edge.config import AppConfig, PlatesConfig
from edge.inference.pool import ModelPool
from edge.plates.consensus import PlateConsensus, PlateResult
from edge.plates.lists import PlateLists, publish_fields
from edge.plates.reader import PlateReader
from edge.tracking import Track

# plates are read on these vehicle types only (a detector's "vehicle" label defers to the type vote)
PLATED_TYPES = {"car", "van", "truck", "bus", "motorcycle"}


@dataclass(frozen=True)
class PlateUpdate:
    """A track's plate as it may be published (privacy applied), and how sure we are."""

    fields: dict[str, str]  # plate and/or plate_hash
    confidence: float
    reads: int
    candidates: list[tuple[str, float]] = field(default_factory=list)  # empty unless publishable text
    listed: str | None = None  # "watch" or "allow" when the plate is on a list
    box: list[float] | None = None  # normalised box of the latest read
    first: bool = True  # the first plate published for the track


class PlateStage:
    """Owns the models and per-track state of plate reading for one camera."""

    def __init__(
        self, cfg: PlatesConfig, app: AppConfig, vehicle_labels: set[str], *, pool: ModelPool | None = None
    ) -> None:
        """``pool``: where the plate models load (the run's; default: the process's default pool)."""
        self.cfg = cfg
        self.reader = PlateReader(cfg, **app.model_options(), pool=pool)
        self.backend = self.reader.backend
        self.consensus = PlateConsensus(cfg.consensus, cfg.min_confidence)
        self.lists = PlateLists(cfg.lists)
        self.vehicle_labels = vehicle_labels
        self.last_read_seconds: float | None = None  # duration of the read in the last observe, if any
        self._salt = cfg.hash_salt.get_secret_value() if cfg.hash_salt else None

    def wants(self, track: Track, frame_height: int) -> bool:
        """Read this track now? Vehicles big enough to read, at most ``reads_per_track`` times."""
        if track.label not in self.vehicle_labels:
            return False
        box = track.last_box
        if (box[3] - box[1]) * frame_height < self.cfg.min_vehicle_height:
            return False
        kind = track.top_attr("type")
        if kind is not None and kind not in PLATED_TYPES:
            return False
        return track.state.plate_reads < self.cfg.reads_per_track

    def observe(self, track: Track, image: np.ndarray, now: float) -> PlateUpdate | None:
        """Read the plate of ``track`` in ``image`` (when worth it); the plate to publish when
        the track's consensus is new or improved, else None."""
        self.last_read_seconds = None
        if not self.wants(track, image.shape[0]):
            return None
        t0 = time.perf_counter()
        reads = self.reader.read(image, box=track.last_box)
        self.last_read_seconds = time.perf_counter() - t0
        track.state.plate_reads += 1
        result = self.consensus.add(track.id, reads[0] if reads else None, now)
        if result is None:
            return None
        if reads:
            track.state.plate_box = [round(float(v), 4) for v in reads[0].box]
        return self._update(track, result)

    def finish(self, track: Track) -> PlateUpdate | None:
        """Forget an ending track; its final plate if that differs from the last published."""
        result = self.consensus.finish(track.id)
        return None if result is None else self._update(track, result)

    def fields(self, text: str) -> dict[str, str]:
        """``plate`` and/or ``plate_hash`` as the privacy setting says."""
        return publish_fields(text, self.cfg.publish, self._salt)

    def _update(self, track: Track, result: PlateResult) -> PlateUpdate:
        fields = self.fields(result.text)
        first = not track.state.plate
        track.state.plate = fields
        candidates = result.candidates[: self.cfg.top_n] if "plate" in fields and self.cfg.top_n > 1 else []
        match = self.lists.match(result.text)
        return PlateUpdate(
            fields=fields,
            confidence=result.confidence,
            reads=result.reads,
            candidates=list(candidates),
            listed=match.list if match is not None else None,
            box=track.state.plate_box,
            first=first,
        )
