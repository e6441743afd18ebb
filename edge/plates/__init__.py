"""Licence-plate stage: detect (LPD-YuNet + PP-OCR DBNet refinement), rectify, read (PP-OCRv4
CTC with region formats), per-track consensus, allow/watch lists and salted hashing.

Typical use::

    reader = PlateReader(cfg.plates, threads=2)
    consensus = PlateConsensus(cfg.plates.consensus, cfg.plates.min_confidence)
    lists = PlateLists(cfg.plates.lists)
    for read in reader.read(frame.image, box=vehicle_xyxy)[:1]:
        result = consensus.add(track_id, read, frame.capture_time)
        if result:
            match = lists.match(result.text)
            fields = publish_fields(result.text, cfg.plates.publish, salt)
"""

from edge.plates.config import PlateConsensusConfig, PlateListsConfig, PlatesConfig
from edge.plates.consensus import PlateConsensus, PlateResult, jaro_winkler
from edge.plates.decode import Candidate
from edge.plates.formats import REGION_FORMATS, REGION_GROUPS, compile_formats, normalize_plate
from edge.plates.lists import ListMatch, PlateLists, edit_distance, plate_hash, publish_fields
from edge.plates.reader import PlateRead, PlateReader

__all__ = [
    "REGION_FORMATS",
    "REGION_GROUPS",
    "Candidate",
    "ListMatch",
    "PlateConsensus",
    "PlateConsensusConfig",
    "PlateLists",
    "PlateListsConfig",
    "PlateRead",
    "PlateReader",
    "PlateResult",
    "PlatesConfig",
    "compile_formats",
    "edit_distance",
    "jaro_winkler",
    "normalize_plate",
    "plate_hash",
    "publish_fields",
]
