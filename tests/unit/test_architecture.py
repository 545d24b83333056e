"""The shape of `src/fiscus`: imports run one way (no cycle between modules) and no module grows past
600 lines, so each can be read and changed alone.

Every import statement counts wherever it stands: at module level, inside a function and inside an
`if TYPE_CHECKING:` block. A function-level import or a type-only import still ties two modules
together, so neither is a way round a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "fiscus"
MAX_LINES = 600
SIZE_EXEMPT = ("fiscus/adapters/db/migrations/", "fiscus/adapters/db/tables.py")
"""Alembic revisions and the table definitions are long by nature: one schema, written out."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _imported(module: str, path: Path, known: set[str]) -> Iterator[str]:
    """The modules of the package that `module` imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _nearest_module(alias.name, known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in known:
                    yield submodule
                else:
                    yield from _nearest_module(target, known)


def _nearest_module(name: str, known: set[str]) -> Iterator[str]:
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            yield candidate
            return
        parts.pop()


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {
        name: {target for target in _imported(name, path, known) if target != name}
        for name, path in modules.items()
    }


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; the components of more than one module are the cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def a_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete cycle inside a strongly connected component, to name in the failure."""
    members = set(component)
    start = component[0]
    paths: dict[str, list[str]] = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    return [*paths[node], start]
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    return component  # unreachable for a real component


def test_the_cycle_finder_names_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    [component] = strongly_connected(graph)
    assert component == ["a", "b", "c"]
    assert a_cycle(graph, component) == ["a", "b", "c", "a"]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_imports_inside_functions_and_type_checking_blocks_count(tmp_path: Path) -> None:
    module = tmp_path / "mod.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from fiscus.a import thing\n"
        "if TYPE_CHECKING:\n"
        "    from fiscus.b import Type\n"
        "def late() -> None:\n"
        "    import fiscus.c.d\n"
        "    from fiscus import e\n"
        "    from . import f\n",
        encoding="utf-8",
    )
    known = {"fiscus", "fiscus.a", "fiscus.b", "fiscus.c", "fiscus.c.d", "fiscus.e", "fiscus.pkg.f"}
    found = set(_imported("fiscus.pkg.mod", module, known))
    assert found == {"fiscus.a", "fiscus.b", "fiscus.c.d", "fiscus.e", "fiscus.pkg.f"}


def test_no_import_cycle_between_modules() -> None:
    graph = import_graph()
    assert len(graph) > 50, "the package's modules were not found"
    cycles = [" -> ".join(a_cycle(graph, c)) for c in strongly_connected(graph)]
    assert not cycles, (
        "imports must run one way; move what both sides need one level down instead of importing in a "
        "circle (a function-level import does not break it):\n  " + "\n  ".join(cycles)
    )


def _too_long(paths: list[str]) -> list[str]:
    too_long = []
    for relative in paths:
        lines = len((SRC / relative).read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            too_long.append(f"src/{relative}: {lines} lines")
    return too_long


def test_no_module_over_600_lines() -> None:
    paths = [p.relative_to(SRC).as_posix() for p in sorted((SRC / PACKAGE).rglob("*.py"))]
    checked = [p for p in paths if not p.startswith(SIZE_EXEMPT)]
    too_long = _too_long(checked)
    assert not too_long, (
        f"no module in src/ may exceed {MAX_LINES} lines (migrations and tables.py aside); split these by "
        "responsibility:\n  " + "\n  ".join(too_long)
    )
