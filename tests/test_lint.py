"""Lint and types as CI checks: ``ruff check`` on the code, benches and tests, ``mypy edge`` with
the settings in pyproject.toml (``disallow_any_generics``: a ``dict`` says what it holds).

In CI (``CI=true``) a missing ruff or mypy fails these tests; elsewhere they skip."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, need


def _tool(module: str) -> None:
    need(importlib.util.find_spec(module) is not None, f"python package {module} (pip install -e '.[dev]')")


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=1200)


def test_ruff_finds_nothing() -> None:
    _tool("ruff")
    proc = _run("ruff", "check", "edge", "convert", "bench", "tests")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr


def test_mypy_edge_is_clean() -> None:
    _tool("mypy")
    proc = _run("mypy", "edge")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr


def test_mypy_rejects_a_bare_generic_in_edge(tmp_path: Path) -> None:
    """The project's mypy settings are the strict ones: an untyped ``dict`` in a module of
    ``edge`` is an error, so "checked by mypy" means its contents are checked too."""
    _tool("mypy")
    module = tmp_path / "edge_lint_probe.py"
    module.write_text("def counts() -> dict:\n    return {}\n", encoding="utf-8")
    proc = _run("mypy", "--config-file", str(ROOT / "pyproject.toml"), "--no-incremental", str(module), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'Missing type arguments for generic type "dict"' in proc.stdout
