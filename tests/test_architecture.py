"""The package map of DESIGN.md holds: imports between subpackages never go in a circle (imports inside functions
counted), no lazy ``__getattr__`` in a subpackage, and nothing outside ``tasks/`` dispatches on the task's type."""

from __future__ import annotations

import ast
import fnmatch
import re
import tomllib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "convscope"


def _subpackage_imports() -> dict[str, set[str]]:
    """Subpackage -> the other subpackages it imports from, anywhere in its modules (functions included)."""
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) < 2:
            continue  # top-level modules (the public API, the recipe) may import anything
        me = rel.parts[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if len(parts) > 1 and parts[0] == "convscope" and parts[1] != me and (PACKAGE / parts[1]).is_dir():
                    edges.setdefault(me, set()).add(parts[1])
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of subpackages, or None."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt] if nxt in path else [*path, nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_no_import_cycle_between_subpackages() -> None:
    assert _cycle(_subpackage_imports()) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_lazy_getattr_in_subpackages() -> None:
    lazy = [str(p.relative_to(PACKAGE)) for p in PACKAGE.glob("*/__init__.py") if "def __getattr__" in p.read_text()]
    assert lazy == []


def test_no_dispatch_on_the_task_type_outside_tasks() -> None:
    pattern = re.compile(r"isinstance\([^)]*Task")
    found = [f"{p.relative_to(PACKAGE)}" for p in PACKAGE.rglob("*.py")
             if p.relative_to(PACKAGE).parts[0] != "tasks" and pattern.search(p.read_text())]
    assert found == []


def test_every_data_file_of_the_package_is_declared_package_data() -> None:
    """A file the package reads at run time (weights, model cards, recipes, templates, samples) reaches the wheel only
    through ``[tool.setuptools.package-data]``."""
    pyproject = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["convscope"]
    data = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert data and "pretrained/nuclei.safetensors" in data
    undeclared = [f for f in data if not any(fnmatch.fnmatch(f, pattern) for pattern in patterns)]
    assert undeclared == []
