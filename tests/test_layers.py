"""The package's layers, drawn from its imports: no cycle between top-level parts, and a bottom floor
that stands on nothing else (DESIGN.md, "Layers").

A top-level part is what sits directly under kaiga/: `kaiga/cli.py` is `cli`, `kaiga/server/app.py` is
`server`, `kaiga/families/gan/model.py` is `families`. Every `import kaiga.…` counts, at module level or
inside a function (a lazy import is still a dependency). kaiga/__init__.py is the package root: it
re-exports for users and is no part.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kaiga"
BOTTOM = {"version", "paths", "request", "prompt_syntax", "capabilities", "safetensors_header"}



def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module: str) -> str | None:
    """`kaiga.server.app` -> "server"; the package root -> None."""
    names = module.split(".")
    return names[1] if len(names) > 1 else None


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The kaiga modules an import statement names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target == "kaiga":  # `from kaiga import x`: the submodule x, or the root's re-export
        return [f"kaiga.{a.name}" if (PACKAGE / f"{a.name}.py").exists() or (PACKAGE / a.name).is_dir()
                else "kaiga" for a in node.names]
    return [target]


def import_edges() -> dict[tuple[str, str], list[str]]:
    """(part, part) -> the `file:line` of every import that makes the edge."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        source = _part(module)
        if source is None:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            for target in _imported(node, module, path.name == "__init__.py"):
                if target != "kaiga" and not target.startswith("kaiga."):
                    continue
                where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                edges[(source, _part(target) or "<package root>")].append(where)
    return {edge: where for edge, where in edges.items() if edge[0] != edge[1]}


def find_cycle(edges) -> list[tuple[str, str]] | None:
    """One cycle of the directed graph `edges` as its list of edges, or None."""
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return list(zip(found, found[1:]))
    return None


def _describe(cycle, edges) -> str:
    return "; ".join(f"{a} -> {b} ({', '.join(edges[(a, b)])})" for a, b in cycle)


def test_no_part_imports_the_package_root():
    # The root's re-exports (kaiga.Studio) hide the real edge: import the part itself.
    edges = import_edges()
    uses = {a: where for (a, b), where in edges.items() if b == "<package root>"}
    assert not uses, f"import from the part itself, not from kaiga: {uses}"


def test_no_cycle_between_top_level_parts():
    edges = import_edges()
    cycle = find_cycle(edges)
    assert cycle is None, f"import cycle between top-level parts: {_describe(cycle, edges)}"


def test_the_bottom_floor_stands_on_nothing_else():
    edges = import_edges()
    up = {edge: where for edge, where in edges.items() if edge[0] in BOTTOM and edge[1] not in BOTTOM}
    assert not up, f"bottom-floor modules may import only each other: {up}"


def test_the_cycle_finder_reports_a_cycle_and_only_a_cycle():
    assert find_cycle({("a", "b"), ("b", "c")}) is None
    assert find_cycle({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == [("a", "b"), ("b", "c"), ("c", "a")]
