"""The import graph of a package, read statically, and the cycles in it.

`python -m tests.support.imports` prints the cycles of `app/` (none, when the layout holds)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

Graph = dict[str, set[str]]


def _module_names(root: Path) -> dict[str, Path]:
    names = {}
    for path in root.rglob("*.py"):
        if "migrations" in path.parts:
            continue  # Alembic scripts are loaded by Alembic, not imported
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    return names


def import_graph(root: Path) -> Graph:
    """Module → the package's modules it imports (anywhere in the file, lazily or not)."""
    modules = _module_names(root)

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: Graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                found = resolve(target)
                if found and found != name:
                    graph[name].add(found)
    return graph


def room_graph(graph: Graph) -> Graph:
    """The same graph between rooms: `app.fire.service` belongs to room `app.fire`."""

    def room(module: str) -> str:
        return ".".join(module.split(".")[:2])

    rooms: Graph = {}
    for module, targets in graph.items():
        edges = rooms.setdefault(room(module), set())
        edges.update(room(t) for t in targets if room(t) != room(module))
    return rooms


def find_cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components with more than one member, each sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "app").resolve()
    modules = import_graph(root)
    rooms = room_graph(modules)
    for label, graph in (("modules", modules), ("rooms", rooms)):
        cycles = find_cycles(graph)
        edges = sum(len(t) for t in graph.values())
        print(f"{len(graph)} {label}, {edges} import edges, {len(cycles)} cycles")
        for cycle in cycles:
            print("  cycle: " + " <-> ".join(cycle))
    return 0


if __name__ == "__main__":
    sys.exit(main())
