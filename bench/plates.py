"""Licence-plate benchmark on OpenALPR-format folders: a wrapper of :mod:`edge.plates.bench`, which
holds the benchmark (so ``edge plates bench`` runs from an installed package too).

Usage: ``python bench/plates.py DIR [DIR ...] [--regions br,eu] [--own-region] [--ocr A,B] [--failures]
[--old-decoder] [--frames N]`` (``-h`` lists every option; what it prints: ``edge/plates/bench.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from edge.plates.bench import Read, Sample, load_folder, main  # noqa: E402

__all__ = ["Read", "Sample", "load_folder", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
