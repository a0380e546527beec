"""The import graph of the zooprobe source, read from the code (no module is imported).

One walker serves two callers: ``zooprobe dvc-sync`` lists the modules a stage's command can
import as the stage's code dependencies, and the architecture test fails on an import cycle or on
torch reachable from a layer that must stay torch-free (``params``, ``analysis``, ``report``).
Every ``import`` counts, at module level or inside a function: a lazy import still runs.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path
from typing import Iterable, Mapping, Sequence

PACKAGE = "zooprobe"
# Packages that make a process import the deep-learning stack (seconds, and a GPU runtime).
TORCH_PACKAGES = ("torch", "torchvision", "timm")
# Layers that must run without torch: the settings, the statistics and the report.
TORCH_FREE_LAYERS = ("zooprobe.params", "zooprobe.analysis", "zooprobe.report")

ImportGraph = dict[str, set[str]]


def module_files(package_dir: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of a package folder, by dotted name.

    Args:
        package_dir: the package's folder, e.g. ``src/zooprobe``.
        package: the package's import name.

    Returns:
        Dotted module name (a package is named by its ``__init__.py``) to its file, sorted by name.
    """
    package_dir = Path(package_dir)
    found = {}
    for file in sorted(package_dir.rglob("*.py")):
        parts = file.relative_to(package_dir).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((package, *parts))] = file
    return found


def imported_names(tree: ast.AST, module: str, *, is_package: bool = False) -> set[str]:
    """Dotted names of what ``tree`` imports anywhere in it, including inside functions.

    ``from a.b import c`` gives both ``a.b`` and ``a.b.c``: the second counts when ``c`` is a
    module (the caller knows which names are modules). Relative imports are made absolute.

    Args:
        tree: a parsed module, or any part of one (e.g. one function).
        module: the dotted name of the module the tree belongs to, to resolve relative imports.
        is_package: whether that module is a package's ``__init__.py``.

    Returns:
        The imported dotted names.
    """
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if alias.name != "*"}
    return found


def resolve(names: Iterable[str], modules: Mapping[str, Path]) -> set[str]:
    """The modules that importing ``names`` runs, as graph nodes.

    A name inside the package maps to the longest module it names plus the packages above it
    (importing ``zooprobe.io.h5io`` runs ``zooprobe/__init__.py`` and ``zooprobe/io/__init__.py``
    first); a name outside it keeps its own name (``torch.nn``), so that its top package shows.

    Args:
        names: from ``imported_names``.
        modules: from ``module_files``.

    Returns:
        Node names.
    """
    nodes = set()
    for name in names:
        if name != PACKAGE and not name.startswith(PACKAGE + "."):
            nodes.add(name)
            continue
        parts = name.split(".")
        # `from zooprobe.x import function` names no module; the longest prefix that is one counts.
        while parts and ".".join(parts) not in modules:
            parts.pop()
        nodes |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return nodes


def import_graph(package_dir: Path, package: str = PACKAGE) -> ImportGraph:
    """Edges from each module of the package to every node its imports run.

    Args:
        package_dir: the package's folder.
        package: the package's import name.

    Returns:
        Module name to the set of nodes it imports (package modules and outside names).
    """
    modules = module_files(package_dir, package)
    graph: ImportGraph = {}
    for name, file in modules.items():
        tree = ast.parse(file.read_text(), filename=str(file))
        imported = imported_names(tree, name, is_package=file.name == "__init__.py")
        graph[name] = resolve(imported, modules) - {name}
    return graph


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One import cycle per strongly connected group of package modules (see ``cycle_groups``).

    Args:
        graph: from ``import_graph``.

    Returns:
        Each cycle as a list of modules whose last imports the first; sorted, empty when there is none.
    """
    return sorted(_cycle_in(group, graph) for group in cycle_groups(graph))


def cycle_groups(graph: Mapping[str, set[str]]) -> list[set[str]]:
    """The groups of package modules that import each other, directly or through others.

    Args:
        graph: from ``import_graph``.

    Returns:
        Each group of two or more modules (every one reaches every other), sorted by first member.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the package has well under 1000 modules
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups, key=min)


def _cycle_in(group: set[str], graph: Mapping[str, set[str]]) -> list[str]:
    """A shortest cycle through the group's first module, to print."""
    start = min(group)
    inside = {node: graph[node] & group for node in group}
    path = shortest_path(inside, start, lambda node: start in inside[node])
    assert path is not None, "a strongly connected group always holds a cycle"
    return path


def shortest_path(graph: Mapping[str, set[str]], start: str, is_target) -> list[str] | None:
    """Breadth-first path from ``start`` to the first node where ``is_target(node)`` holds.

    Args:
        graph: node to the nodes it imports.
        start: the first node.
        is_target: predicate on a node name.

    Returns:
        The nodes from ``start`` to the target, both included; None when none is reachable.
    """
    came_from: dict[str, str | None] = {start: None}
    todo = deque([start])
    while todo:
        node = todo.popleft()
        if is_target(node):
            path = []
            while node is not None:
                path.append(node)
                node = came_from[node]
            return path[::-1]
        for nxt in sorted(graph.get(node, ())):
            if nxt not in came_from:
                came_from[nxt] = node
                todo.append(nxt)
    return None


def torch_paths(graph: Mapping[str, set[str]], layers: Sequence[str] = TORCH_FREE_LAYERS,
                forbidden: Sequence[str] = TORCH_PACKAGES) -> list[list[str]]:
    """Import paths from a module of a torch-free layer to torch, torchvision or timm.

    Args:
        graph: from ``import_graph``.
        layers: dotted package names whose modules must not reach ``forbidden``.
        forbidden: top-level package names.

    Returns:
        One shortest path per offending module (module first, the forbidden import last).
    """
    def is_forbidden(node: str) -> bool:
        return node.split(".")[0] in forbidden

    found = []
    for module in sorted(graph):
        if any(module == layer or module.startswith(layer + ".") for layer in layers):
            path = shortest_path(graph, module, is_forbidden)
            if path is not None:
                found.append(path)
    return found


def import_problems(package_dir: Path) -> list[str]:
    """Every import cycle and every torch-free layer that reaches torch, one line each.

    Args:
        package_dir: the zooprobe package folder.

    Returns:
        Lines such as ``cycle: a -> b -> a`` and ``torch reachable: zooprobe.params.x -> ... -> torch``;
        empty when the graph is clean.
    """
    graph = import_graph(package_dir)
    problems = [f"cycle: {' -> '.join([*cycle, cycle[0]])}" for cycle in find_cycles(graph)]
    problems += [f"torch reachable: {' -> '.join(path)}" for path in torch_paths(graph)]
    return problems
