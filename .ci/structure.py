"""Measure the package structure from the imports: arrows between units, import cycles, upward arrows.

A unit is a subpackage of edge (edge.rules), a top-level module (edge.app) or the toolchain (convert).
Every import that runs counts, also the ones inside functions (a lazy import is still a dependency);
imports under ``if TYPE_CHECKING:`` do not.
Upward arrows: a unit importing the app layer (edge.app, edge.cli, edge.replay, edge.demo, edge.__main__)
or the toolchain (convert) from inside edge.

    python3 .ci/structure.py [--json] [--root DIR]
"""

from __future__ import annotations

import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # --root DIR measures another checkout
APP_LAYER = {"edge.app", "edge.cli", "edge.replay", "edge.demo", "edge.__main__"}


def module_name(path: Path) -> str:
    """``edge/rules/engine.py`` -> ``edge.rules.engine`` (a package's __init__ is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit_of(module: str) -> str:
    """The unit a module belongs to: ``edge.rules.kinds.base`` -> ``edge.rules``, ``convert.cli`` -> ``convert``."""
    parts = module.split(".")
    if parts[0] == "convert":
        return "convert"
    return ".".join(parts[:2])


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports (absolute and relative, at any depth of the file)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):  # imports for type checkers only do not run: not a dependency
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            subs = [f"{base}.{a.name}" for a in node.names]
            # "from pkg import submodule" depends on the submodule; other names on pkg itself
            names = subs if all(n in modules for n in subs) else [base, *subs]
        else:
            continue
        for name in names:
            while name and name not in modules:  # edge.rules.engine.Engine -> edge.rules.engine
                name = name.rpartition(".")[0]
            if name and name != me:
                found.add(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    n = stack.pop()
                    on_stack.discard(n)
                    comp.append(n)
                    if n == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def measure() -> dict[str, object]:
    """Arrows, cycles and upward arrows of edge/ and convert/."""
    files = sorted(p for d in ("edge", "convert") for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)
    modules = {module_name(p) for p in files}
    graph = {module_name(p): imports_of(p, modules) for p in files}
    arrows: dict[tuple[str, str], int] = defaultdict(int)
    for src, dsts in graph.items():
        for dst in dsts:
            a, b = unit_of(src), unit_of(dst)
            if a != b:
                arrows[(a, b)] += 1
    upward = sorted(
        f"{a} -> {b}"
        for a, b in arrows
        if a.startswith("edge") and a not in APP_LAYER and (b in APP_LAYER or b == "convert")
    )
    return {
        "files": len(files),
        "units": len({unit_of(m) for m in modules}),
        "arrows": len(arrows),
        "file_cycles": cycles(graph),
        "upward": upward,
    }


def main() -> int:
    global ROOT
    if "--root" in sys.argv:
        ROOT = Path(sys.argv[sys.argv.index("--root") + 1]).resolve()
    res = measure()
    if "--json" in sys.argv:
        print(json.dumps(res, indent=1))
        return 0
    cyc = res["file_cycles"]
    assert isinstance(cyc, list)
    print(f"{res['files']} files, {res['units']} units, {res['arrows']} arrows between units")
    print(f"import cycles: {len(cyc)}" + "".join(f"\n  {len(c)} files: {' '.join(c)}" for c in cyc))
    print(f"upward arrows (to the app or the toolchain): {res['upward'] or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
