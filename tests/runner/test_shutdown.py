"""Stopping a replica (issue 9, part 5), under a manual clock: a run still going after the grace
is stopped and its lease released at once, so another replica takes it over without the clock
moving; a run that ends within the grace is recorded as usual, and a lease another replica
took over is never released by the old holder."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

from app.domain.states import RunStatus
from app.store import Store
from tests.runner.support import (
    ManualClock,
    SwitchableStore,
    admit,
    eventually,
    replica,
    stored,
)

pytestmark = pytest.mark.asyncio

LEASE = 30
MARK_THEN_SLEEP = "import sys, time; open(sys.argv[1], 'a').write('started'); time.sleep(30)"


def command(*argv: str) -> dict[str, object]:
    return {"type": "command", "argv": [sys.executable, *argv]}


async def test_a_run_stopped_by_shutdown_is_taken_over_at_once(
    store: Store, tmp_path: Path
) -> None:
    clock = ManualClock()
    marker = tmp_path / "started"
    async with httpx.AsyncClient() as http:
        stopping = replica(store, http, "a", clock=clock, lease=LEASE)
        fire = await admit(store, "a", now=clock(), lease=LEASE)
        stopping.start(fire, command("-c", MARK_THEN_SLEEP, str(marker)))

        async def started() -> bool:
            return marker.exists()

        await eventually(started, "the command to start")
        staying = replica(store, http, "b", clock=clock, lease=LEASE)
        assert await staying.recover_expired() == 0  # held by a live replica

        await stopping.shutdown(grace=0.1)
        assert stopping.active == 0
        released = await stored(store, fire.id)
        assert released.status == RunStatus.RUNNING
        assert released.lease_expires_at is None
        assert released.attempt == 1

        # The clock has not moved: the takeover does not wait for the lease to expire.
        assert await staying.recover_expired() == 1
        resumed = await stored(store, fire.id)
        assert (resumed.lease_owner, resumed.attempt) == ("b", 2)
        assert resumed.fencing_token == fire.fencing_token + 1
        assert resumed.dedup_key == fire.dedup_key
        await staying.shutdown(grace=0)


async def test_a_run_that_ends_within_the_grace_is_recorded_and_nothing_released(
    store: Store,
) -> None:
    clock = ManualClock()
    async with httpx.AsyncClient() as http:
        executor = replica(store, http, "a", clock=clock, lease=LEASE)
        fire = await admit(store, "a", now=clock(), lease=LEASE)
        executor.start(fire, command("-c", "import time; time.sleep(0.3)"))
        await executor.shutdown(grace=10)
        done = await stored(store, fire.id)
        assert done.status == RunStatus.SUCCEEDED
        assert done.attempt == 1


async def test_a_lease_taken_over_meanwhile_is_not_released(store: Store) -> None:
    clock = ManualClock()
    fire = await admit(store, "a", now=clock(), lease=LEASE)
    async with store.transaction() as tx:
        taken = await tx.fires.take_over_lease(
            fire, owner="b", lease_expires_at=clock(), now=clock()
        )
    assert taken is not None
    async with store.transaction() as tx:
        assert not await tx.fires.release_lease(fire.id, fire.fencing_token)  # stale token
    assert (await stored(store, fire.id)).lease_expires_at == clock()
    async with store.transaction() as tx:
        assert await tx.fires.release_lease(taken.id, taken.fencing_token)
    assert (await stored(store, fire.id)).lease_expires_at is None


async def test_new_runs_wait_in_the_store_while_stopping(store: Store) -> None:
    clock = ManualClock()
    async with httpx.AsyncClient() as http:
        executor = replica(store, http, "a", clock=clock, lease=LEASE)
        fire = await admit(store, "a", now=clock(), lease=LEASE)
        executor.refuse_new_runs()
        executor.start(fire, command("-c", "pass"))
        await executor.shutdown(grace=5)
        queued = await stored(store, fire.id)
        assert queued.status == RunStatus.QUEUED
        assert queued.lease_owner is None


async def test_an_outcome_still_being_written_at_shutdown_is_written_not_released(
    store: Store,
) -> None:
    """A run that ended just before the stop, its end write waiting out a store blink: the
    shutdown lets the write land instead of releasing a finished fire for another run."""
    clock = ManualClock()
    switch = SwitchableStore(store)
    async with httpx.AsyncClient() as http:
        executor = replica(switch, http, "a", clock=clock, lease=LEASE)
        fire = await admit(store, "a", now=clock(), lease=LEASE)
        switch.down = True
        executor.start(fire, command("-c", "pass"))

        async def end_write_waiting() -> bool:
            return executor.outcomes_waiting > 0

        await eventually(end_write_waiting, "the end write to wait for the store")
        stopping = asyncio.create_task(executor.shutdown(grace=0))
        await asyncio.sleep(0.3)
        switch.down = False
        await stopping
    done = await stored(store, fire.id)
    assert done.status == RunStatus.SUCCEEDED
    assert done.attempt == 1
    staying_clock = ManualClock()
    async with httpx.AsyncClient() as http:
        staying = replica(store, http, "b", clock=staying_clock, lease=LEASE)
        assert await staying.recover_expired() == 0
