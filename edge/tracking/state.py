"""What the pipeline remembers about one track between frames, as one typed record.

The tracker owns boxes and ids; everything the later stages (description, plates, events,
geometry) need to remember per track lives here, attached to the track as ``Track.state``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.tracking.evidence import TypeEvidence

# how much each source's mean score weighs in the fused type vote (edge.tracking.evidence): the
# COCO crop typer and a class-aware detector fully; the attributes model's type, made for
# close-up barrier views and sure of itself on top-down and far views, about a third of one
# COCO view; the size cue (edge.pipeline.size_cue) half of one, as it says only "heavy"
TYPE_SOURCE_WEIGHTS = {"detector": 1.0, "coco": 1.0, "attributes": 0.3, "size": 0.5}


@dataclass
class LineProgress:
    """Where a track stands relative to one counting line."""

    side: int = 0  # side it last settled on, beyond the hysteresis band: +1 in side, -1 out side, 0 not yet
    last: tuple[float, float, float] | None = None  # previous trajectory point (t, signed distance, along)
    cross_at: float | None = None  # time the path last went through the line (interpolated)
    cross_on_line: bool = False  # ... within the line's extent (not past its ends)


@dataclass
class TrackState:
    """Per-track memory of the stages after the tracker."""

    started: bool = False  # the track's ``start`` event was emitted
    zones: list[str] = field(default_factory=list)  # zones announced on the last track event
    last_event: float | None = None  # time of the last track event (for periodic updates)
    best_score: float = 0.0  # best detection score seen (reported on ``end``)
    attr_samples: int = 0  # crops classified by the attributes model
    clean_samples: int = 0  # of which the box did not touch the frame edge
    type_views: int = 0  # crops typed by the COCO crop typer
    type_area: float = 0.0  # normalised box area of the last of them
    size_views: int = 0  # views measured against the other vehicles' size (size cue)
    size_area: float = 0.0  # normalised box area of the last of them
    type_evidence: TypeEvidence = field(default_factory=lambda: TypeEvidence(TYPE_SOURCE_WEIGHTS))
    colour_votes: dict[str, float] = field(default_factory=dict)  # the attributes model's, before the white check
    evenness_sum: float = 0.0  # paint evenness of the crops the model called white (white check) ...
    evenness_n: int = 0  # ... and how many
    plate: dict[str, str] = field(default_factory=dict)  # published plate fields (plate / plate_hash)
    plate_box: list[float] | None = None  # normalised box of the latest plate read
    plate_reads: int = 0  # plate reads spent on this track
    # bottom-centre points (t, x, y) from the first detection on, confirmed or not: line
    # crossings are judged on the whole path, so a car confirmed after the line still counts
    trajectory: list[tuple[float, float, float]] = field(default_factory=list)
    judged: int = 0  # trajectory points already judged against the lines
    lines: dict[str, LineProgress] = field(default_factory=dict)
    zones_in: dict[str, float] = field(default_factory=dict)  # zone -> time entered (zone events)
