"""The layout's rules, checked over the source: imports go one way (no cycles between modules
or between the rooms of `app/`), SQL stays in the store, and no module grows past a size a
reader can hold."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.imports import find_cycles, import_graph, room_graph

APP = Path(__file__).resolve().parents[2] / "app"
MAX_LINES = 350


def test_no_import_cycle_between_modules() -> None:
    assert find_cycles(import_graph(APP)) == []


def test_no_import_cycle_between_rooms() -> None:
    assert find_cycles(room_graph(import_graph(APP))) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]


def test_only_the_store_speaks_sql() -> None:
    offenders = []
    for path in APP.rglob("*.py"):
        if "store" in path.relative_to(APP).parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            if any(m.split(".")[0] in ("sqlalchemy", "alembic") for m in modules):
                offenders.append(str(path.relative_to(APP)))
    assert offenders == []


def test_no_module_over_the_size_limit() -> None:
    sizes = {
        str(path.relative_to(APP)): len(path.read_text().splitlines()) for path in APP.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
