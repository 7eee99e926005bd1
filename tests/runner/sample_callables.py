"""Functions the python-target tests call by `tests.runner.sample_callables:<name>`."""

from __future__ import annotations

import asyncio
import threading
import time
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


# Gates the executor tests open one at a time: `gated(name)` returns once `GATES[name]` is
# set, and notes in `STARTED` the order runs began in.
GATES: dict[str, asyncio.Event] = {}
STARTED: list[str] = []


async def gated(name: str) -> str:
    STARTED.append(name)
    await GATES.setdefault(name, asyncio.Event()).wait()
    return name


def with_nul() -> str:
    """Output no PostgreSQL text column takes as is."""
    return "before\x00after"


_busy_lock = threading.Lock()
_busy = 0
PEAK_BUSY = [0]


def busy(seconds: float) -> str:
    """Holds a worker for `seconds`, noting in `PEAK_BUSY` how many ran at once."""
    global _busy
    with _busy_lock:
        _busy += 1
        PEAK_BUSY[0] = max(PEAK_BUSY[0], _busy)
    time.sleep(seconds)
    with _busy_lock:
        _busy -= 1
    return threading.current_thread().name
