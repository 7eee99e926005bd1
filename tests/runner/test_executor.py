"""The leased executor against a real store whose availability the test switches: a run's
lease is renewed until its outcome is recorded, the outcome waits out a store outage, and no
replica takes over a fire whose holder is alive."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.domain.fires import fire_dedup_key, new_fire
from app.domain.records import FireRecord
from app.domain.states import RunKind, RunStatus
from app.runner.executor import RunExecutor
from app.runner.targets import TargetRunner
from app.store import Store
from tests.runner.support import SwitchableStore
from tests.support.records import job_row

pytestmark = pytest.mark.asyncio

LEASE = 2  # seconds: renewals every second


def replica(store: Store, http: httpx.AsyncClient, node: str) -> RunExecutor:
    return RunExecutor(
        store,
        TargetRunner(http, max_output_bytes=4096),
        node_id=node,
        lease_seconds=LEASE,
        clock=lambda: datetime.now(UTC),
    )


async def admit(store: Store, owner: str) -> FireRecord:
    now = datetime.now(UTC).replace(microsecond=0)
    async with store.transaction() as tx:
        await tx.jobs.insert(job_row("job-1", next_run_at=now + timedelta(minutes=1)))
        return await tx.fires.insert(
            new_fire(
                job_id="job-1",
                fire_at=now,
                dedup_key=fire_dedup_key("job-1", now),
                kind=RunKind.SCHEDULED,
                status=RunStatus.RUNNING,
                now=now,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=LEASE),
            )
        )


async def stored(store: Store, fire_id: int) -> FireRecord:
    async with store.transaction() as tx:
        fire = await tx.fires.get(fire_id)
    assert fire is not None
    return fire


COMMAND: dict[str, object] = {"type": "command", "argv": ["sh", "-c", "sleep 0.3"]}


async def test_an_outcome_waits_out_an_outage_longer_than_the_lease(store: Store) -> None:
    shared = SwitchableStore(store)
    async with httpx.AsyncClient() as http:
        holder, other = replica(shared, http, "a"), replica(shared, http, "b")
        fire = await admit(shared, "a")
        shared.down = True  # the store goes away while the target runs
        holder.start(fire, COMMAND)
        await asyncio.sleep(LEASE * 1.5)  # the target ended; its lease expired meanwhile
        assert holder.outcomes_waiting == 1
        assert await other.recover_expired() == 0  # it cannot tell a dead holder: no takeover
        shared.down = False
        # Back: the other replica saw the outage, so it leaves the expired lease to a holder
        # that may still be alive, and the holder records its outcome.
        assert await other.recover_expired() == 0
        await holder.wait_idle(timeout=10)
    recorded = await stored(shared, fire.id)
    assert (recorded.status, recorded.attempt, recorded.outcome) == (
        RunStatus.SUCCEEDED,
        1,
        "exit 0",
    )
    assert holder.outcomes_waiting == 0


async def test_an_outage_shorter_than_the_lease_never_makes_a_second_run(store: Store) -> None:
    """The chaos run's double runs: the target ends while the store is down for less than
    the lease. The holder keeps its lease and records the outcome as soon as the store is
    back, before a replica that did not see the outage could find the lease expired."""
    shared = SwitchableStore(store)
    async with httpx.AsyncClient() as http:
        holder, other = replica(shared, http, "a"), replica(store, http, "b")
        fire = await admit(shared, "a")
        holder.start(fire, COMMAND)
        shared.down = True
        await asyncio.sleep(LEASE * 0.75)
        shared.down = False
        await asyncio.sleep(LEASE * 0.5)  # past the lease the fire was admitted with
        assert await other.recover_expired() == 0
        await holder.wait_idle(timeout=10)
    recorded = await stored(shared, fire.id)
    assert (recorded.status, recorded.attempt, recorded.lease_owner) == (
        RunStatus.SUCCEEDED,
        1,
        None,
    )


async def test_a_replica_never_takes_over_a_fire_it_still_holds(store: Store) -> None:
    async with httpx.AsyncClient() as http:
        holder, other = replica(store, http, "a"), replica(store, http, "b")
        fire = await admit(store, "a")
        long_run: dict[str, object] = {"type": "command", "argv": ["sh", "-c", "sleep 2"]}
        holder.start(fire, long_run)
        await asyncio.sleep(0.2)
        async with store.transaction() as tx:  # as if the holder's renewals had not landed
            await tx.fires.renew_lease(
                fire.id, fire.fencing_token, datetime.now(UTC) - timedelta(seconds=LEASE * 5)
            )
        assert await holder.recover_expired() == 0  # its own run: never taken over
        assert await other.recover_expired() == 1  # a replica that does not hold it may
        await other.wait_idle(timeout=10)
        await holder.wait_idle(timeout=10)
    recorded = await stored(store, fire.id)
    assert (recorded.attempt, recorded.status) == (2, RunStatus.SUCCEEDED)
