"""A track's vehicle-type evidence, kept per source and fused as weighted means.

Sources see a track a different number of times (the detector's label every inferred frame,
the COCO crop typer up to 3 views, the attributes model up to 8 crops, the size cue once per
typed view). Summing their votes would let the source that runs most often win; instead each
source's scores are averaged over its own views and the means are added with a fixed weight
per source, so the fused vote says how much each kind of evidence is trusted, not how often it
ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HEAVY = "heavy"  # a coarse vote (truck or bus): resolved to the heavy type the other sources prefer
HEAVY_TYPES = ("truck", "bus")


@dataclass
class TypeEvidence:
    """Per-source score sums and view counts; ``votes()`` is the fused type vote."""

    weights: dict[str, float]
    sums: dict[str, dict[str, float]] = field(default_factory=dict)
    views: dict[str, float] = field(default_factory=dict)  # summed view weights per source

    def add(self, source: str, scores: dict[str, float], weight: float = 1.0) -> None:
        """One view of ``source``: its score per type, ``weight`` in the source's mean (a partial
        view counts less). An empty dict is a view that found nothing it could type: it does
        not dilute the source's mean."""
        if not scores or weight <= 0:
            return
        self.views[source] = self.views.get(source, 0.0) + weight
        sums = self.sums.setdefault(source, {})
        for kind, score in scores.items():
            sums[kind] = sums.get(kind, 0.0) + weight * float(score)

    def votes(self) -> dict[str, float]:
        """Type -> fused weight: sum over sources of weight x mean score. A ``heavy`` (coarse)
        vote goes to whichever of truck / bus the other sources rate higher (truck on a tie)."""
        fused: dict[str, float] = {}
        for source, sums in self.sums.items():
            w = self.weights.get(source, 1.0) / self.views[source]
            for kind, score in sums.items():
                fused[kind] = fused.get(kind, 0.0) + w * score
        heavy = fused.pop(HEAVY, 0.0)
        if heavy > 0:
            kind = max(HEAVY_TYPES, key=lambda k: (fused.get(k, 0.0), k == "truck"))
            fused[kind] = fused.get(kind, 0.0) + heavy
        return fused
