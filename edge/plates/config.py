"""Plate stage configuration (one ``plates:`` section per camera)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from edge.config import Fraction, Strict
from edge.plates.formats import REGION_FORMATS, REGION_GROUPS


class PlateListsConfig(Strict):
    """Allow and watch lists, matched with a small edit-distance tolerance."""

    allow: list[str] = Field(default_factory=list, description="plates that are let in / not alerted")
    watch: list[str] = Field(default_factory=list, description="plates that raise an alert")
    max_distance: int = Field(1, ge=0, le=3, description="edit operations tolerated in a match")


class PlateConsensusConfig(Strict):
    """How reads of one tracked vehicle are merged."""

    similarity: Fraction = Field(0.8, description="Jaro-Winkler similarity grouping reads of one plate")
    min_reads: int = Field(1, ge=1, description="reads needed before a plate is reported")
    improve_margin: Fraction = Field(0.05, description="confidence gain needed to report an update")


class PlatesConfig(Strict):
    """Licence-plate detection and reading for one camera."""

    enabled: bool = True
    detector_model: str = "lpd-yunet-plate"
    ocr_model: str = Field(
        "ppocr-v4", description="ppocr-v4, or license-plate-recognition-barrier-0001 (LPRNet) for Chinese plates"
    )
    backend: Literal["onnx", "openvino"] | None = Field(
        None, description="default: the manifest's first installed (OpenVINO, then ONNX Runtime)"
    )
    regions: list[str] = Field(
        default_factory=list,
        description="region codes (br, eu, de, us, za ...) or custom regexes over normalised text",
    )
    strict_formats: bool = Field(False, description="drop reads that fit none of the region formats")
    detect_threshold: Fraction = Field(0.02, description="YuNet score floor; low because reading validates candidates")
    max_plates: int = Field(3, ge=1, le=10, description="plate candidates read per image")
    tiles: bool = Field(True, description="retry large frames tile by tile when no confident read")
    min_chars: int = Field(4, ge=1, le=12)
    max_chars: int = Field(10, ge=1, le=16)
    min_confidence: Fraction = Field(0.5, description="reads below are not reported")
    top_n: int = Field(3, ge=1, le=20, description="text candidates per plate")
    lists: PlateListsConfig = Field(default_factory=PlateListsConfig)
    consensus: PlateConsensusConfig = Field(default_factory=PlateConsensusConfig)
    publish: Literal["text", "hash", "both"] = Field(
        "text", description="hash: publish HMAC-SHA256(salt, plate) instead of the text"
    )
    hash_salt: SecretStr | None = Field(None, description="secret salt for hashing; use ${VAR}")

    @field_validator("regions")
    @classmethod
    def _regions_known(cls, value: list[str]) -> list[str]:
        for item in value:
            key = item.strip().lower()
            if key in REGION_FORMATS or key in REGION_GROUPS:
                continue
            try:
                re.compile(item)
            except re.error as err:
                raise ValueError(f"{item!r} is neither a region code nor a valid regex: {err}") from None
        return value

    @model_validator(mode="after")
    def _check(self) -> PlatesConfig:
        if self.min_chars > self.max_chars:
            raise ValueError("min_chars must not exceed max_chars")
        if self.publish != "text" and not (self.hash_salt and self.hash_salt.get_secret_value()):
            raise ValueError("publish: hash needs a non-empty hash_salt")
        return self
