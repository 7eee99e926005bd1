"""The fire gate: a burst waits its turn; only a process truly over capacity refuses, at once
and before any work (503 `overloaded` + `Retry-After`), and counts what it refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.errors import Overloaded
from app.fire.gate import FireGate
from tests.support.agent import RunningNas, run_agent

pytestmark = pytest.mark.asyncio


async def test_fires_over_the_concurrency_wait_their_turn() -> None:
    gate = FireGate(concurrency=2, queue=10, max_wait=5, retry_after=3)
    release = asyncio.Event()
    most = 0

    async def fire() -> None:
        nonlocal most
        async with gate.turn():
            most = max(most, gate.working)
            await release.wait()

    tasks = [asyncio.create_task(fire()) for _ in range(6)]
    await asyncio.sleep(0.05)
    assert (gate.working, gate.waiting) == (2, 4)
    release.set()
    await asyncio.gather(*tasks)
    assert most == 2
    assert gate.shed == 0


async def test_a_full_queue_refuses_at_once_and_counts() -> None:
    gate = FireGate(concurrency=1, queue=1, max_wait=5, retry_after=3)
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.turn():
            await release.wait()

    holder = asyncio.create_task(hold())
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0.02)
    with pytest.raises(Overloaded) as refused:
        async with gate.turn():
            raise AssertionError("a refused fire never gets a turn")
    assert refused.value.headers == {"Retry-After": "3"}
    assert gate.shed == 1
    release.set()
    await asyncio.gather(holder, waiter)
    assert (gate.working, gate.waiting) == (0, 0)


async def test_a_fire_that_waits_too_long_is_refused_and_leaves_no_trace() -> None:
    gate = FireGate(concurrency=1, queue=10, max_wait=0.05, retry_after=3)
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.turn():
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded):
        async with gate.turn():
            raise AssertionError("unreachable")
    assert (gate.waiting, gate.shed) == (0, 1)
    release.set()
    await holder
    async with gate.turn():  # the slot went back: the next fire gets its turn at once
        assert gate.working == 1


async def test_an_overloaded_agent_answers_503_before_reading_the_fire(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    async with run_agent(
        database_url, nas, fire_concurrency=1, fire_queue=0, fire_queue_wait_seconds=5
    ) as agent:
        gate = agent.services.fire_gate
        async with gate.turn():  # the one turn is taken
            answer = await agent.client.post(
                "/api/cron/fire", content=b"not even json", headers={"Authorization": "x"}
            )
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == str(agent.settings.retry_after_seconds)
        assert answer.json()["error"] == "overloaded"
        assert gate.shed == 1
        # With the turn back, the same request is read and judged: 401, not 503.
        again = await agent.client.post(
            "/api/cron/fire", content=b"not even json", headers={"Authorization": "x"}
        )
        assert again.status_code == 401
