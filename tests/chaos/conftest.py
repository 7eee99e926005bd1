"""The chaos test runs only when asked for by marker (`make chaos`: `pytest -m chaos`); any
other run, `make test` and `make test-fast` included, skips it, saying how to run it."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "chaos" in str(config.getoption("markexpr") or ""):
        return  # `-m chaos` runs it; `-m "not chaos"` deselects it
    skip = pytest.mark.skip(
        reason="chaos test: runs only when selected, `make chaos` (pytest -m chaos tests/chaos)"
    )
    for item in items:
        if item.get_closest_marker("chaos") is not None:
            item.add_marker(skip)
