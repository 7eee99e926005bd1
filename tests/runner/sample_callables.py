"""Functions the python-target tests call by `tests.runner.sample_callables:<name>`."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any


def add(a: int, b: int) -> int:
    return a + b


def where_am_i() -> dict[str, bool]:
    """Reports whether it runs on the main thread (where the event loop lives)."""
    return {"main_thread": threading.current_thread() is threading.main_thread()}


async def greet(name: str) -> str:
    await asyncio.sleep(0)
    return f"hello, {name}"


def explode(message: str = "kaboom") -> None:
    raise ValueError(message)


async def explode_async() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("async kaboom")


def raise_timeout() -> None:
    raise TimeoutError("upstream socket timed out")


async def sleepy(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke up"


def summary() -> dict[str, Any]:
    return {"count": 2, "when": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)}


def nothing() -> None:
    return None


NOT_A_FUNCTION = 42
