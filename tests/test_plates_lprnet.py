"""LPRNet (the Chinese-plate reader) wired into the plate stage. No Chinese plate images are in
the shared data, so its recogniser is checked on a real EU plate crop, whose Latin characters
it also reads."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import PlatesConfig
from edge.inference.backends import load_backend
from edge.plates import PlateReader
from edge.plates.lprnet import LprnetRecognizer
from edge.registry import ensure_model


@pytest.mark.usefixtures("model_env")
def test_lprnet_reads_a_real_plate_crop(shared_data: Path) -> None:
    manifest, folder = ensure_model("license-plate-recognition-barrier-0001")
    rec = LprnetRecognizer(load_backend("openvino", folder / manifest.entry), manifest.read_labels(folder))
    img = cv2.imread(str(shared_data / "openalpr" / "eu" / "eu10.jpg"))
    name, x, y, w, h, label = (shared_data / "openalpr" / "eu" / "eu10.txt").read_text().split("\t")
    text = rec.read(img[int(y) : int(y) + int(h), int(x) : int(x) + int(w)])
    # LPRNet always starts with a province token; the rest is the plate
    assert text.startswith("<") and text.split(">", 1)[1] == label.strip()
    assert rec.read(np.zeros((0, 0, 3), np.uint8)) == ""


@pytest.mark.usefixtures("model_env")
def test_reader_with_lprnet_runs_end_to_end_without_errors(shared_data: Path) -> None:
    reader = PlateReader(PlatesConfig(ocr_model="license-plate-recognition-barrier-0001"))
    assert reader.lprnet is not None and reader.refiner is None
    for name in ("eu3", "eu10", "test_001"):
        reads = reader.read(cv2.imread(str(shared_data / "openalpr" / "eu" / f"{name}.jpg")))
        for r in reads:  # whatever it finds is a well-formed read with the detector's score
            assert r.candidates and 0.0 <= r.confidence <= 1.0
    assert reader.read(np.full((100, 100, 3), 255, np.uint8)) == []
