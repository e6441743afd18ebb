"""A camera's ``plates:`` section: licence-plate detection, reading, lists and publishing."""

from __future__ import annotations

import re
import warnings
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from edge.config.schema.base import MAX_COUNT, Fraction, Strict


class PlateListsConfig(Strict):
    """Allow and watch lists, matched with a small edit-distance tolerance."""

    allow: list[str] = Field(default_factory=list, description="plates that are let in / not alerted")
    watch: list[str] = Field(default_factory=list, description="plates that raise an alert")
    max_distance: int = Field(1, ge=0, le=3, description="edit operations tolerated in a match")


class PlateConsensusConfig(Strict):
    """How reads of one tracked vehicle are merged."""

    similarity: Fraction = Field(0.8, description="Jaro-Winkler similarity grouping reads of one plate")
    min_reads: int = Field(1, ge=1, le=MAX_COUNT, description="reads needed before a plate is reported")
    improve_margin: Fraction = Field(0.05, description="confidence gain needed to report an update")


_MAX_REGEX = 512  # a plate format is a few dozen characters


class PlatesConfig(Strict):
    """Licence-plate detection and reading for one camera."""

    enabled: bool = True
    detector_model: str = "lpd-yunet-plate"
    ocr_model: str = Field(
        "cct-xs-v1-global-plate-ocr",
        description="cct-xs-v1-global-plate-ocr (plate-specific, Latin plates of many countries), ppocr-v4 "
        "(general text recogniser), or license-plate-recognition-barrier-0001 (LPRNet) for Chinese plates",
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
    min_vehicle_height: int = Field(
        48,
        ge=8,
        le=4000,
        description="pixels of the frame plates are read from (native with full_resolution): smaller (distant) "
        "vehicles are not read, their plates are unreadable",
    )
    full_resolution: bool = Field(
        True,
        description="crop plates from the camera's native frames (bounded by max_frame_pixels), not the "
        "detect.width ones: the camera reader then delivers native frames and the pipeline resizes for "
        "detection (more memory per buffered frame; see docs/plates.md for the cost)",
    )
    reads_per_track: int = Field(
        10, ge=1, le=1000, description="plate reads per vehicle track: bounds the cost of a parked car"
    )
    top_n: int = Field(3, ge=1, le=20, description="text candidates per plate")
    confirm_below: Fraction = Field(
        0.0, description="slot reader: reads less confident than this get a PP-OCRv4 second opinion (0 = never)"
    )
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
            from edge.plates.formats import REGION_FORMATS, REGION_GROUPS  # lazy: pulls in numpy

            key = item.strip().lower()
            if key in REGION_FORMATS or key in REGION_GROUPS:
                continue
            if len(item) > _MAX_REGEX:
                raise ValueError(f"a custom plate regex is limited to {_MAX_REGEX} characters, got {len(item)}")
            try:
                with warnings.catch_warnings():  # "possible nested set" etc. would break the one-line output
                    warnings.simplefilter("ignore")
                    re.compile(item)
            except (re.error, RecursionError, OverflowError) as err:  # nesting too deep for sre: not re.error
                why = err if isinstance(err, re.error) else "too deeply nested"
                raise ValueError(f"{item!r} is neither a region code nor a valid regex: {why}") from None
        return value

    @model_validator(mode="after")
    def _check(self) -> PlatesConfig:
        if self.min_chars > self.max_chars:
            raise ValueError("min_chars must not exceed max_chars")
        if self.publish != "text" and not (self.hash_salt and self.hash_salt.get_secret_value()):
            raise ValueError("publish: hash needs a non-empty hash_salt")
        return self
