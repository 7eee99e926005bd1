"""The executor's recovery paths one step at a time, under a manual clock: an end write that
waits out the store (never a second run, never a self-takeover), an end write that fails for
another reason, renewals through an outage, and the takeover of a dead replica's run."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import httpx
import pytest

from app.domain.states import RunStatus
from app.runner.outcomes import RetryPace
from app.store import Store
from tests.runner import sample_callables
from tests.runner.support import (
    ManualClock,
    SwitchableStore,
    admit,
    capture_context,
    eventually,
    lines,
    python,
    replica,
    stored,
)

pytestmark = pytest.mark.asyncio

LEASE = 5


async def test_a_run_whose_end_waits_for_the_store_is_never_run_again(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9, part 1: the store is down as a short run ends, for far longer than the lease.
    The replica keeps the fire: its own recovery never takes it over, and once the store is
    back exactly one run is recorded, as attempt 1."""
    capture_context(caplog.handler)
    caplog.set_level(logging.INFO, logger="app.runner")
    clock = ManualClock()
    shared = SwitchableStore(store)
    slow = RetryPace(initial=1.0, maximum=1.0)  # a window between two tries of the end write
    async with httpx.AsyncClient() as http:
        holder = replica(shared, http, "a", clock=clock, lease=LEASE, pace=slow)
        fire = await admit(shared, "a", now=clock())
        shared.down = True
        holder.start(fire, python("add", a=1, b=2))

        async def waiting() -> bool:
            return holder.outcomes_waiting == 1

        await eventually(waiting, "the run's end to wait for the store")
        clock.advance(LEASE * 20)  # the lease is long expired as the store sees it
        shared.down = False
        shared.last_unavailable_at = None  # no outage guard: only holding the fire protects it
        assert holder.outcomes_waiting == 1
        assert await holder.recover_expired() == 0  # still held here: never taken over
        await holder.wait_idle(timeout=10)
        assert await holder.recover_expired() == 0
    recorded = await stored(shared, fire.id)
    assert (recorded.status, recorded.attempt, recorded.output) == (RunStatus.SUCCEEDED, 1, "3")
    assert holder.outcomes_waiting == 0
    waits = lines(caplog.records, "could not record the run's outcome")
    assert waits and waits[0]["level"] == "WARNING"
    assert {k: waits[0][k] for k in ("job_id", "fire_at", "attempt")} == {
        "job_id": "job-1",
        "fire_at": fire.fire_at.isoformat(),
        "attempt": 1,
    }
    assert not lines(caplog.records, "resuming a run")


async def test_an_end_write_refused_for_another_reason_is_retried_with_less(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A write that fails for a reason that is not an outage is not given up either (that
    would let the lease lapse and run the job again): it is logged at ERROR, by type only,
    and retried without the output."""
    capture_context(caplog.handler)
    clock = ManualClock()
    shared = SwitchableStore(store)
    async with httpx.AsyncClient() as http:
        holder = replica(shared, http, "a", clock=clock)
        fire = await admit(shared, "a", now=clock())
        shared.failure = ValueError("secret=hunter2 in the statement")
        holder.start(fire, python("add", a=1, b=2))

        async def refused_twice() -> bool:
            return shared.failed >= 2

        await eventually(refused_twice, "the end write to be refused")
        shared.failure = None
        await holder.wait_idle(timeout=10)
    recorded = await stored(shared, fire.id)
    assert (recorded.status, recorded.attempt, recorded.output) == (RunStatus.SUCCEEDED, 1, None)
    assert recorded.error == "the run's output could not be stored (ValueError)"
    errors = lines(caplog.records, "could not record the run's outcome")
    assert errors[0]["level"] == "ERROR" and errors[0]["problem"] == "ValueError"
    assert "hunter2" not in caplog.text


async def test_output_the_database_refuses_is_stored_readably_and_run_once(store: Store) -> None:
    """A NUL character in the output: PostgreSQL refuses it in text. Before, the end write
    raised, the run was dropped and run again once its lease lapsed, again and again."""
    clock = ManualClock()
    async with httpx.AsyncClient() as http:
        holder = replica(store, http, "a", clock=clock)
        fire = await admit(store, "a", now=clock())
        holder.start(fire, python("with_nul"))
        await holder.wait_idle(timeout=10)
        clock.advance(LEASE * 20)
        assert await holder.recover_expired() == 0
    recorded = await stored(store, fire.id)
    assert (recorded.status, recorded.attempt) == (RunStatus.SUCCEEDED, 1)
    assert recorded.output == "before\ufffdafter"


async def test_renewals_go_on_through_an_outage(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    capture_context(caplog.handler)
    clock = ManualClock()
    shared = SwitchableStore(store)
    gate = "renewals"
    sample_callables.GATES[gate] = asyncio.Event()
    async with httpx.AsyncClient() as http:
        holder = replica(shared, http, "a", clock=clock, lease=3)  # renewals every second
        fire = await admit(shared, "a", now=clock(), lease=3)
        holder.start(fire, python("gated", name=gate))
        shared.down = True

        async def renewal_refused() -> bool:
            return shared.failed >= 1

        await eventually(renewal_refused, "a renewal to meet the outage")
        clock.advance(60)
        shared.down = False

        async def renewed() -> bool:
            lease = (await stored(shared, fire.id)).lease_expires_at
            return lease is not None and lease == clock() + timedelta(seconds=3)

        await eventually(renewed, "the lease to be renewed from the manual clock's now")
        sample_callables.GATES[gate].set()
        await holder.wait_idle(timeout=10)
    recorded = await stored(shared, fire.id)
    assert (recorded.status, recorded.attempt, recorded.output) == (
        RunStatus.SUCCEEDED,
        1,
        gate,
    )
    warned = lines(caplog.records, "could not renew the run's lease")
    assert warned[0]["level"] == "WARNING" and warned[0]["job_id"] == "job-1"


async def test_an_expired_lease_is_taken_over_after_half_a_lease_more(store: Store) -> None:
    clock = ManualClock()
    async with httpx.AsyncClient() as http:
        survivor = replica(store, http, "b", clock=clock)
        fire = await admit(store, "dead", now=clock(), target=python("add", a=2, b=2))
        clock.advance(LEASE)
        assert await survivor.recover_expired() == 0  # just expired: the holder may be late
        clock.advance(LEASE / 2 + 1)
        assert await survivor.recover_expired() == 1
        taken = await stored(store, fire.id)
        assert (taken.lease_owner, taken.attempt, taken.fencing_token) == ("b", 2, 2)
        assert await survivor.recover_expired() == 0  # held here now
        await survivor.wait_idle(timeout=10)
    recorded = await stored(store, fire.id)
    assert (recorded.status, recorded.attempt, recorded.output) == (RunStatus.SUCCEEDED, 2, "4")
