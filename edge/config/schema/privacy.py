"""A camera's ``privacy:`` section: what is masked in pictures that leave the device."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge.config.schema.base import Strict

MaskMode = Literal["blur", "pixelate", "fill", "off"]


class PrivacyConfig(Strict):
    """What is masked in every picture that leaves the device (snapshots, evidence, thumbnails,
    ``edge replay --annotate``); see docs/privacy.md."""

    people: MaskMode = Field("blur", description="whole people, segmented on person-box crops")
    faces: MaskMode = Field("blur", description="heads: the top of each person's mask (for people: off)")
    plates: MaskMode | Literal["auto"] = Field(
        "auto", description="licence plates; auto = blur when plates.publish is hash or both, else off"
    )
    on_failure: Literal["drop", "blur"] = Field(
        "drop", description="a model that fails: drop the picture, or send it fully blurred"
    )
    detector: str = Field("person-vehicle-bike-detection-crossroad-0078", description="person detector model")
    segmenter: str = Field("mediapipe-selfie-segmentation", description="person segmentation model (LiteRT)")
