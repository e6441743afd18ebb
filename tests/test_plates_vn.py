"""Real two-line plates: Vietnamese motorbike, car and truck plates in street photos and crops
(``bench/data/plates-vn.json``; the photos come from a public PyPI source package, built into
OpenALPR-format folders by ``bench/plate_sets.py``), read with no region and with ``vn``.

Floors are today's level less one plate of slack (docs/plates.md has the table). The set also
holds plates of a region whose formats the no-region reader need not know: the previous edge
rule read eight of them one character short.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edge.plates import PlateReader, PlatesConfig
from edge.plates.bench import load_folder
from tests.conftest import need

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from plate_sets import build  # noqa: E402

# set -> exact reads at least (of 23 each)
FLOORS = {"two-line": 18, "one-line": 21}


@pytest.fixture(scope="module")
def vn_sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    try:
        return build(tmp_path_factory.mktemp("plate-sets"))
    except (RuntimeError, OSError) as e:  # no PyPI here
        need(False, f"the VN plate photos (bench/plate_sets.py): {e}")
        raise


@pytest.mark.parametrize("regions", [[], ["vn"]], ids=["no-region", "vn"])
def test_real_vn_plates_are_read(
    vn_sets: dict[str, Path], regions: list[str], shared_models: Path, tmp_path: Path
) -> None:
    import cv2

    reader = PlateReader(PlatesConfig(regions=regions), threads=2, cache_dir=tmp_path, mirror=str(shared_models))
    for name, folder in vn_sets.items():
        samples = load_folder(folder)
        assert len(samples) == 23
        wrong = []
        for s in samples:
            reads = reader.read(cv2.imread(str(s.image)))
            text = reads[0].text if reads else "-"
            if text != s.text:
                wrong.append(f"{s.image.stem}:{s.text}>{text}")
        assert len(samples) - len(wrong) >= FLOORS[name], (name, regions, wrong)


def test_vn_set_photos_are_checked(tmp_path: Path) -> None:
    """A package whose bytes are not the labelled ones is refused by name, not read with the
    wrong labels."""
    import json

    spec = json.loads((Path(__file__).resolve().parents[1] / "bench" / "data" / "plates-vn.json").read_text())
    (tmp_path / spec["source"]["file"]).write_bytes(b"not the package")
    from plate_sets import fetch_package

    with pytest.raises(RuntimeError, match="sha256"):
        fetch_package(spec, tmp_path)
