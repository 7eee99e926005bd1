"""Python targets in their own bounded thread pool (`CHRONOS_PYTHON_WORKERS`): plain functions
and module imports run there, never on the event loop, at most `workers` at once."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from app.domain.states import RunStatus
from app.runner.targets import PythonTarget, RunContext, TargetRunner, parse_target
from tests.runner import sample_callables

pytestmark = pytest.mark.asyncio

CTX = RunContext(job_id="job-1", fire_at=datetime(2030, 1, 1, tzinfo=UTC), dedup_key="k")


def target(spec: str, **kwargs: object) -> PythonTarget:
    parsed = parse_target({"type": "python", "callable": spec, "kwargs": kwargs})
    assert isinstance(parsed, PythonTarget)
    return parsed


async def test_plain_functions_never_run_more_at_once_than_the_workers(tmp_path: Path) -> None:
    sample_callables.PEAK_BUSY[0] = 0
    async with httpx.AsyncClient() as http:
        runner = TargetRunner(http, python_workers=2)
        spec = "tests.runner.sample_callables:busy"
        results = await asyncio.gather(
            *(runner.run(target(spec, seconds=0.2), CTX) for _ in range(5))
        )
        runner.close()
    assert [r.status for r in results] == [RunStatus.SUCCEEDED] * 5
    assert sample_callables.PEAK_BUSY[0] == 2
    assert all((r.output or "").startswith("chronos-python") for r in results)


async def test_a_module_is_imported_in_a_worker_not_on_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"probe_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "import threading, time\n"
        "time.sleep(0.3)  # a slow import: the event loop must keep turning meanwhile\n"
        "IMPORTED_ON = threading.current_thread().name\n"
        "def where():\n"
        "    return IMPORTED_ON\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async with httpx.AsyncClient() as http:
        runner = TargetRunner(http, python_workers=1)
        ticker = asyncio.create_task(tick())
        result = await runner.run(target(f"{name}:where"), CTX)
        ticker.cancel()
        runner.close()
    assert result.status == RunStatus.SUCCEEDED
    assert (result.output or "").startswith("chronos-python")
    assert result.output != threading.main_thread().name
    assert ticks >= 10  # the loop ran while the module was imported


async def test_a_module_that_cannot_be_imported_fails_the_run(tmp_path: Path) -> None:
    async with httpx.AsyncClient() as http:
        runner = TargetRunner(http, python_workers=1)
        result = await runner.run(target("no_such_module_here:run"), CTX)
        runner.close()
    assert result.status == RunStatus.FAILED
    assert (result.error or "").startswith("cannot load callable 'no_such_module_here:run'")
