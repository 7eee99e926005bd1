"""Bounded work: a replica runs at most `max_concurrent_runs` at once; a fire over that waits
in the store as `queued`, its lease released, and queued fires start in admission order as
capacity frees, on whichever replica has it."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from app.domain.records import FireRecord
from app.domain.states import RunStatus
from app.fire.policy import decide
from app.store import Store
from tests.runner import sample_callables
from tests.runner.support import (
    ManualClock,
    SwitchableStore,
    admit,
    eventually,
    python,
    replica,
    stored,
)
from tests.support.records import job_record

pytestmark = pytest.mark.asyncio


def gates(count: int) -> list[str]:
    names = [f"gate-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    for name in names:
        sample_callables.GATES[name] = asyncio.Event()
    return names


async def admitted(store: Store, clock: ManualClock, names: list[str]) -> list[FireRecord]:
    """One job per gate (its target waits for it), each fire admitted a second after the one
    before."""
    fires = []
    for name in names:
        target = python("gated", name=name)
        fires.append(await admit(store, "a", now=clock(), job_id=name, target=target))
        clock.advance(1)
    return fires


async def status_of(store: Store, fire: FireRecord) -> RunStatus:
    return (await stored(store, fire.id)).status


def started(names: list[str]) -> list[str]:
    return [name for name in sample_callables.STARTED if name in names]


async def test_runs_over_capacity_wait_queued_and_start_in_admission_order(store: Store) -> None:
    clock = ManualClock()
    names = gates(3)
    fires = await admitted(store, clock, names)
    async with httpx.AsyncClient() as http:
        executor = replica(store, http, "a", clock=clock, capacity=1)
        for fire, name in zip(fires, names, strict=True):
            executor.start(fire, python("gated", name=name))

        async def queued() -> bool:
            return [await status_of(store, f) for f in fires[1:]] == [RunStatus.QUEUED] * 2

        await eventually(queued, "the runs over capacity to be queued")
        waiting = await stored(store, fires[1].id)
        assert (waiting.attempt, waiting.lease_owner, waiting.lease_expires_at) == (0, None, None)
        assert started(names) == names[:1]
        assert executor.free_slots == 0

        sample_callables.GATES[names[0]].set()  # the first run ends: the oldest queued starts

        async def second_running() -> bool:
            return await status_of(store, fires[1]) == RunStatus.RUNNING

        await eventually(second_running, "the oldest queued run to start")
        assert await status_of(store, fires[2]) == RunStatus.QUEUED
        resumed = await stored(store, fires[1].id)
        assert (resumed.attempt, resumed.lease_owner, resumed.fencing_token) == (1, "a", 2)

        sample_callables.GATES[names[1]].set()
        sample_callables.GATES[names[2]].set()
        await executor.wait_idle(timeout=10)
    assert started(names) == names
    assert [await status_of(store, f) for f in fires] == [RunStatus.SUCCEEDED] * 3
    assert [(await stored(store, f.id)).attempt for f in fires] == [1, 1, 1]


async def test_a_replica_with_capacity_starts_what_another_queued(store: Store) -> None:
    clock = ManualClock()
    names = gates(3)
    fires = await admitted(store, clock, names)
    async with httpx.AsyncClient() as http:
        busy = replica(store, http, "a", clock=clock, capacity=1)
        idle = replica(store, http, "b", clock=clock, capacity=1)
        for fire, name in zip(fires, names, strict=True):
            busy.start(fire, python("gated", name=name))

        async def queued() -> bool:
            return await status_of(store, fires[2]) == RunStatus.QUEUED

        await eventually(queued, "the runs over capacity to be queued")
        assert await idle.start_queued() == 1  # its one slot: the oldest queued fire
        assert await idle.start_queued() == 0  # full now
        taken = await stored(store, fires[1].id)
        assert (taken.status, taken.lease_owner, taken.attempt) == (RunStatus.RUNNING, "b", 1)
        assert await status_of(store, fires[2]) == RunStatus.QUEUED
        for name in names:
            sample_callables.GATES[name].set()
        await busy.wait_idle(timeout=10)
        await idle.wait_idle(timeout=10)
    assert [await status_of(store, f) for f in fires] == [RunStatus.SUCCEEDED] * 3


async def test_a_queued_run_counts_as_pending_for_the_overlap_policy(store: Store) -> None:
    clock = ManualClock()
    names = gates(1)
    first = await admit(store, "a", now=clock(), job_id="job-1")
    second = await admit(store, "a", now=clock(), job_id="job-2", target=python("add", a=1, b=1))
    async with httpx.AsyncClient() as http:
        executor = replica(store, http, "a", clock=clock, capacity=1)
        executor.start(first, python("gated", name=names[0]))
        executor.start(second, python("add", a=1, b=1))

        async def queued() -> bool:
            return await status_of(store, second) == RunStatus.QUEUED

        await eventually(queued, "the second job's run to be queued")
        async with store.transaction() as tx:
            running = await tx.fires.running_count("job-2", clock())
            buffered = await tx.fires.buffered("job-2") is not None
        assert running == 1
        decision = decide(job_record(id="job-2"), None, clock(), running=running, buffered=buffered)
        assert decision.status == RunStatus.SKIPPED
        sample_callables.GATES[names[0]].set()
        await executor.wait_idle(timeout=10)
    assert await status_of(store, second) == RunStatus.SUCCEEDED


async def test_a_fire_queued_while_the_store_is_down_is_queued_once_it_is_back(
    store: Store,
) -> None:
    clock = ManualClock()
    shared = SwitchableStore(store)
    names = gates(1)
    first = await admit(shared, "a", now=clock(), job_id="job-1")
    second = await admit(shared, "a", now=clock(), job_id="job-2", target=python("add", a=1, b=1))
    async with httpx.AsyncClient() as http:
        executor = replica(shared, http, "a", clock=clock, capacity=1)
        executor.start(first, python("gated", name=names[0]))
        shared.down = True
        executor.start(second, python("add", a=1, b=1))

        async def tried() -> bool:
            return shared.failed >= 2

        await eventually(tried, "the queue write to meet the outage")
        clock.advance(60)
        shared.last_unavailable_at = None
        shared.down = False
        # Held here until it is queued: this replica never takes it over meanwhile.
        assert second.id in executor._local or await status_of(store, second) == RunStatus.QUEUED

        async def queued() -> bool:
            return await status_of(store, second) == RunStatus.QUEUED

        await eventually(queued, "the queue write to land")
        sample_callables.GATES[names[0]].set()
        await executor.wait_idle(timeout=10)
    recorded = await stored(store, second.id)
    assert (recorded.status, recorded.attempt) == (RunStatus.SUCCEEDED, 1)


async def test_a_taken_over_run_over_capacity_is_queued_first_in_line(store: Store) -> None:
    clock = ManualClock()
    names = gates(1)
    orphan = await admit(store, "dead", now=clock(), job_id="job-0", target=python("add", a=1, b=1))
    clock.advance(1)
    mine = await admit(store, "a", now=clock(), job_id="job-1")
    async with httpx.AsyncClient() as http:
        executor = replica(store, http, "a", clock=clock, capacity=1)
        executor.start(mine, python("gated", name=names[0]))
        clock.advance(10)  # the dead replica's lease is well past expiry
        assert await executor.recover_expired() == 1

        async def queued() -> bool:
            return await status_of(store, orphan) == RunStatus.QUEUED

        await eventually(queued, "the taken-over run to be queued")
        assert (await stored(store, orphan.id)).attempt == 1  # one run so far, by the dead one
        sample_callables.GATES[names[0]].set()
        await executor.wait_idle(timeout=10)
    recorded = await stored(store, orphan.id)
    assert (recorded.status, recorded.attempt, recorded.output) == (RunStatus.SUCCEEDED, 2, "2")
