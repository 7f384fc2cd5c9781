"""Imports point down only: each top-level part of tcdml may import parts of a lower layer, never a higher
one or a sibling of its own layer, and no module imports itself back at module level (no cycle).

The layers (docs/architecture.md), lowest first. A new folder must be placed here before it can import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tcdml"

LAYERS: list[set[str]] = [
    {"errors"},
    {"checks"},
    {"io"},
    {"figures", "distributed"},
    {"metrics", "deploy"},
    {"losses", "data", "models"},
    {"calibration"},
    {"training", "adapt", "posthoc"},
    {"export"},
    {"experiments"},
    {"cli"},
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def _part(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["tcdml", *parts])


def _imports(path: Path, *, module_level_only: bool) -> set[str]:
    """The ``tcdml.*`` modules ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    package = _module(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, node.module] if node.module else base) if node.level else node.module
            found.add(name or "")
            found.update(f"{name}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("tcdml.")}


SOURCES = sorted(
    path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py" or path.parent != PACKAGE
)


def test_every_part_has_a_layer() -> None:
    parts = {_part(path) for path in SOURCES}
    assert parts - set(RANK) == set(), "place new folders in tests/test_layers.py LAYERS"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    own = _part(path)
    for name in _imports(path, module_level_only=False):
        target = name.split(".")[1]
        if target == own or target not in RANK:
            continue
        assert RANK[target] < RANK[own], f"{path.name}: {own} (layer {RANK[own]}) imports {name}"


def test_no_module_level_import_cycle() -> None:
    modules = {_module(path): path for path in PACKAGE.rglob("*.py")}
    graph = {
        name: {target for target in _imports(path, module_level_only=True) if target in modules}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if target in (name, "tcdml"):
                continue
            if state.get(target) == 1:
                cycle = trail[trail.index(target) :] if target in trail else trail
                raise AssertionError(f"import cycle: {' -> '.join([*cycle, target])}")
            if target not in state:
                visit(target, [*trail, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
