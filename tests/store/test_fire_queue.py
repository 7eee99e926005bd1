"""The `queued` state in the store: a held fire goes back to the queue with its lease released,
replicas claim queued fires oldest first with a conditional update (`SKIP LOCKED` on
PostgreSQL), and a queued fire counts as a run of its job."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.domain.fires import fire_dedup_key, new_fire
from app.domain.records import FireRecord
from app.domain.states import RunKind, RunStatus
from app.store import Store
from tests.support.records import ANCHOR, job_row

pytestmark = pytest.mark.asyncio

NOW = ANCHOR + timedelta(days=1)
LEASE = timedelta(seconds=60)


async def held(store: Store, job_id: str, *, at: timedelta = timedelta(0)) -> FireRecord:
    now = NOW + at
    async with store.transaction() as tx:
        await tx.jobs.insert(job_row(job_id, next_run_at=now + timedelta(hours=1)))
        return await tx.fires.insert(
            new_fire(
                job_id=job_id,
                fire_at=now,
                dedup_key=fire_dedup_key(job_id, now),
                kind=RunKind.SCHEDULED,
                status=RunStatus.RUNNING,
                now=now,
                lease_owner="a",
                lease_expires_at=now + LEASE,
            )
        )


async def queue(store: Store, fire: FireRecord) -> bool:
    async with store.transaction() as tx:
        return await tx.fires.queue(fire.id, fire.fencing_token)


async def test_a_queued_fire_releases_its_lease_and_its_attempt(store: Store) -> None:
    fire = await held(store, "job-1")
    assert await queue(store, fire)
    assert not await queue(store, fire)  # no longer held under that lease
    async with store.transaction() as tx:
        queued = await tx.fires.get(fire.id)
        assert queued is not None
        assert (queued.status, queued.attempt, queued.lease_owner, queued.started_at) == (
            RunStatus.QUEUED,
            0,
            None,
            None,
        )
        assert await tx.fires.running_count("job-1", NOW) == 1  # pending for the overlap policy
        assert await tx.fires.expired_leases(NOW + LEASE * 10) == []  # nothing to take over


async def test_queued_fires_are_claimed_oldest_first_and_once(store: Store) -> None:
    fires = [await held(store, f"job-{i}", at=timedelta(seconds=i)) for i in range(3)]
    for fire in reversed(fires):
        assert await queue(store, fire)
    async with store.transaction() as tx:
        waiting = await tx.fires.queued(limit=2)
        assert [f.id for f in waiting] == [fires[0].id, fires[1].id]
        first = await tx.fires.claim_queued(
            waiting[0], owner="b", lease_expires_at=NOW + LEASE, now=NOW
        )
        assert first is not None
        assert (first.status, first.lease_owner, first.attempt, first.fencing_token) == (
            RunStatus.RUNNING,
            "b",
            1,
            2,
        )
        again = await tx.fires.claim_queued(
            waiting[0], owner="c", lease_expires_at=NOW + LEASE, now=NOW
        )
        assert again is None  # claimed already: the conditional update changes nothing
        assert [f.id for f in await tx.fires.queued(limit=5)] == [fires[1].id, fires[2].id]


async def test_a_buffered_fire_behind_a_queued_run_is_not_stranded(store: Store) -> None:
    fire = await held(store, "job-1")
    assert await queue(store, fire)
    async with store.transaction() as tx:
        await tx.fires.insert(
            new_fire(
                job_id="job-1",
                fire_at=NOW + timedelta(minutes=1),
                dedup_key=fire_dedup_key("job-1", NOW + timedelta(minutes=1)),
                kind=RunKind.SCHEDULED,
                status=RunStatus.BUFFERED,
                now=NOW,
            )
        )
        assert await tx.fires.stranded_buffered() == []


async def test_replicas_claiming_side_by_side_skip_each_others_rows(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("SQLite serializes writers (BEGIN IMMEDIATE): there is nothing to skip")
    fires = [await held(store, f"job-{i}", at=timedelta(seconds=i)) for i in range(2)]
    for fire in fires:
        assert await queue(store, fire)
    async with store.transaction() as first:
        locked = await first.fires.queued(limit=1)
        async with store.transaction() as second:
            other = await second.fires.queued(limit=2)  # does not wait for the first
        assert [f.id for f in locked] == [fires[0].id]
        assert [f.id for f in other] == [fires[1].id]
