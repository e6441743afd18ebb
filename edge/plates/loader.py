"""Plate models through the model loader every other model uses (:func:`edge.inference.model.open_model`):
the YuNet plate detector and one recogniser, chosen by the recognition model's head type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge.errors import ModelError
from edge.inference.model import ModelOptions, OpenedModel, open_model
from edge.inference.pool import default_pool
from edge.plates.config import PlatesConfig
from edge.plates.detect import YuNetPlateDetector
from edge.plates.formats import compile_formats
from edge.plates.lprnet import LprnetRecognizer
from edge.plates.ocr import PaddleRecognizer
from edge.plates.read_lines import CtcReader, LprnetReader
from edge.plates.read_slots import SlotReader
from edge.plates.reading import PlateRecognizer, RegionReader
from edge.plates.refine import TextLineRefiner
from edge.plates.slots import SlotRecognizer
from edge.registry import Manifest

if TYPE_CHECKING:
    from typing_extensions import Unpack

DECODERS = ("constrained", "legacy")
READER_HEADS = ("ctc", "lprnet", "plate_slots")
CONFIRM_MODEL = "ppocr-v4"  # the second opinion of the slot reader (plates.confirm_below)


@dataclass(frozen=True)
class PlateModels:
    """A loaded plate detector and recogniser; ``backend`` is the detector's (litert, openvino, onnx)."""

    detector: YuNetPlateDetector
    recognizer: PlateRecognizer
    backend: str


def load_plate_models(
    cfg: PlatesConfig, *, decoder: str = "constrained", **options: Unpack[ModelOptions]
) -> PlateModels:
    """Pull and load ``cfg``'s detector and recogniser (``cfg.backend``, else each model's first
    installed backend) with ``options`` (``load_model``'s). ModelError names a model that is not a
    YuNet plate detector or not a plate reader; ValueError an unknown ``decoder``."""
    if decoder not in DECODERS:
        raise ValueError(f"plate decoder {decoder!r}: expected one of {', '.join(DECODERS)}")
    opts: ModelOptions = {**options, "pool": options.get("pool") or default_pool()}
    det = open_model(cfg.detector_model, backend=cfg.backend, check=_plate_detector, **opts)
    assert det.manifest.input is not None
    detector = YuNetPlateDetector(det.backend, det.manifest.input.size, det.manifest.head, det.manifest.input.name)
    base = RegionReader(cfg, detector, compile_formats(cfg.regions, legacy=decoder == "legacy"), decoder)
    ocr = open_model(cfg.ocr_model, backend=cfg.backend, check=_plate_reader, **opts)
    return PlateModels(detector, load_recognizer(base, ocr, opts), det.kind)


def _plate_detector(manifest: Manifest) -> None:
    if manifest.input is None or manifest.head.type != "yunet_plate":
        raise ModelError(f"{manifest.name} is not a YuNet plate detector")


def _plate_reader(manifest: Manifest) -> None:
    if manifest.head.type not in READER_HEADS:
        raise ModelError(
            f"{manifest.name}: not a plate reader "
            "(cct-xs-v1-global-plate-ocr, ppocr-v4 or license-plate-recognition-barrier-0001)"
        )


def load_recognizer(base: RegionReader, ocr: OpenedModel, opts: ModelOptions) -> PlateRecognizer:
    """The recogniser for model ``ocr`` by its head type: ``plate_slots`` (the default slot
    reader, with PP-OCRv4 as an opt-in second opinion), ``lprnet`` or ``ctc`` (PP-OCRv4, with
    its text detector refining quads when the model ships one). ``opts``: ``open_model``'s."""
    head = ocr.manifest.head
    if head.type == "plate_slots":
        size = ocr.manifest.input.size if ocr.manifest.input is not None else (128, 64)
        slots = SlotRecognizer(ocr.backend, ocr.labels(), size, head.pad_char)
        confirm = None
        if base.cfg.confirm_below > 0:  # opt-in second opinion on doubtful reads
            confirm = paddle_recognizer(open_model(CONFIRM_MODEL, backend=base.cfg.backend, **opts))
        return SlotReader(base, slots, head.slots, confirm)
    if head.type == "lprnet":
        return LprnetReader(base, LprnetRecognizer(ocr.backend, ocr.labels()))
    recognizer = paddle_recognizer(ocr)
    det_file = head.det_entry  # PP-OCR text detector shipped with the recogniser
    return CtcReader(base, recognizer, TextLineRefiner(ocr.file_backend(det_file)) if det_file else None)


def paddle_recognizer(ocr: OpenedModel) -> PaddleRecognizer:
    """PP-OCRv4 recogniser of an opened ppocr model (its character list is ONNX metadata)."""
    key = ocr.manifest.head.metadata_key
    chars = ocr.backend.metadata().get(key, "")
    if not chars and ocr.kind != "onnx":  # OpenVINO does not expose ONNX metadata
        chars = ocr.file_backend(ocr.manifest.entry, kind="onnx", threads=1).metadata().get(key, "")
    if not chars:
        raise ModelError(f"{ocr.manifest.name}: character list missing from the model metadata")
    return PaddleRecognizer(ocr.backend, chars.split("\n"))
