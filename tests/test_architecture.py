"""The layers stay as docs/architecture.md draws them: no import cycle between modules, and nothing
below the app imports the app (``edge.app``, ``edge.cli``, ``edge.replay``, ``edge.demo``) or the
toolchain (``convert``). Measured from the source by ``.ci/structure.py``."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _structure() -> ModuleType:
    spec = importlib.util.spec_from_file_location("structure", ROOT / ".ci" / "structure.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_no_import_cycle_and_no_upward_arrow() -> None:
    res = _structure().measure()
    assert res["files"] > 150  # it read the tree
    assert res["file_cycles"] == [], f"import cycles: {res['file_cycles']}"
    assert res["upward"] == [], f"a lower layer imports the app or the toolchain: {res['upward']}"


def test_the_measure_finds_a_cycle(tmp_path: Path) -> None:
    """The check can fail: two modules importing each other are a cycle."""
    structure = _structure()
    (tmp_path / "edge").mkdir()
    (tmp_path / "convert").mkdir()
    (tmp_path / "edge" / "__init__.py").write_text("")
    (tmp_path / "edge" / "a.py").write_text("from edge import b\n")
    (tmp_path / "edge" / "b.py").write_text("def f():\n    import edge.a\n")
    (tmp_path / "edge" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import edge.app\n"
    )
    (tmp_path / "edge" / "app.py").write_text("import edge.c\n")
    structure.ROOT = tmp_path
    res = structure.measure()
    assert res["file_cycles"] == [["edge.a", "edge.b"]]
    assert res["upward"] == []  # an import for type checkers only is not a dependency
