"""Store claim semantics, run on SQLite and (with CHRONOS_TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.domain.fires import fire_dedup_key
from app.domain.states import NasOp, RunStatus
from app.store import DuplicateFire, Store
from tests.support.records import job_row

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def job_values(job_id: str = "job1", next_run_at: datetime = T0) -> dict[str, object]:
    return job_row(
        job_id,
        next_run_at=next_run_at,
        anchor_at=T0 - timedelta(minutes=1),
        created_at=T0,
        updated_at=T0,
    )


def fire_values(job_id: str = "job1", fire_at: datetime = T0, **extra: object) -> dict[str, object]:
    return {
        "job_id": job_id,
        "fire_at": fire_at,
        "dedup_key": fire_dedup_key(job_id, fire_at),
        "kind": "scheduled",
        "status": "running",
        "attempt": 1,
        "lease_owner": "node-a",
        "lease_expires_at": T0 + timedelta(seconds=60),
        "fencing_token": 1,
        "admitted_at": T0,
        "started_at": T0,
        **extra,
    }


async def test_times_round_trip_as_aware_utc(store: Store) -> None:
    paris = timezone(timedelta(hours=1))
    async with store.transaction() as tx:
        await tx.jobs.insert(job_values(next_run_at=datetime(2026, 11, 26, 13, 0, tzinfo=paris)))
    async with store.transaction() as tx:
        job = await tx.jobs.get("job1")
    assert job is not None
    assert job.next_run_at == T0
    assert job.next_run_at.tzinfo is not None
    assert job.next_run_at.utcoffset() == timedelta(0)


async def test_dedup_key_is_job_and_utc_instant() -> None:
    plus_one = datetime(2026, 11, 26, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert fire_dedup_key("j", plus_one) == "j:2026-11-26T12:00:00+00:00"


async def test_second_insert_of_the_same_fire_is_a_duplicate(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.jobs.insert(job_values())
        await tx.fires.insert(fire_values())
    with pytest.raises(DuplicateFire):
        async with store.transaction() as tx:
            await tx.fires.insert(fire_values())
    async with store.transaction() as tx:
        fires = await tx.fires.list_for_job("job1")
    assert len(fires) == 1


async def test_concurrent_inserts_admit_exactly_one(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.jobs.insert(job_values())

    async def attempt() -> bool:
        try:
            async with store.transaction() as tx:
                await tx.fires.insert(fire_values())
        except DuplicateFire:
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(8)))
    assert results.count(True) == 1


async def test_advance_job_is_a_conditional_claim(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.jobs.insert(job_values())
    later = T0 + timedelta(minutes=1)
    async with store.transaction() as tx:
        first = await tx.jobs.advance(
            "job1", expected_next_run_at=T0, values={"next_run_at": later}
        )
    async with store.transaction() as tx:
        second = await tx.jobs.advance(
            "job1", expected_next_run_at=T0, values={"next_run_at": later}
        )
    assert (first, second) == (True, False)


async def test_advance_job_refuses_paused_jobs(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.jobs.insert({**job_values(), "state": "paused"})
        moved = await tx.jobs.advance("job1", expected_next_run_at=T0, values={"next_run_at": None})
    assert moved is False


async def test_outbox_keeps_latest_op_and_acks_only_its_identity(store: Store) -> None:
    async with store.transaction() as tx:
        first = await tx.outbox.queue("job1", NasOp.PROVISION, T0, T0)
        second = await tx.outbox.queue("job1", NasOp.CANCEL, None, T0)
    assert second.op_id != first.op_id
    async with store.transaction() as tx:
        stale_ack = await tx.outbox.ack("job1", first.op_id)
        pending = await tx.outbox.get("job1")
    assert stale_ack is False
    assert pending is not None and pending.op == "cancel"
    async with store.transaction() as tx:
        assert await tx.outbox.ack("job1", second.op_id) is True
        assert await tx.outbox.get("job1") is None


async def test_an_old_ack_after_the_row_was_recreated_changes_nothing(store: Store) -> None:
    """The chaos run's stranded jobs: operation A is acknowledged and its row deleted, the fire
    path queues B in a fresh row; a late acknowledgement of A (another push that read it) must
    not delete B. Identities never repeat, even across a deleted row."""
    later = T0 + timedelta(seconds=7)
    async with store.transaction() as tx:
        a = await tx.outbox.queue("job1", NasOp.PROVISION, T0, T0)
    async with store.transaction() as tx:
        assert await tx.outbox.ack("job1", a.op_id) is True
    async with store.transaction() as tx:
        b = await tx.outbox.queue("job1", NasOp.PROVISION, later, T0)
    assert b.op_id != a.op_id
    async with store.transaction() as tx:
        assert await tx.outbox.ack("job1", a.op_id) is False
        await tx.outbox.note_failure("job1", a.op_id, "HTTP 503", T0)
    async with store.transaction() as tx:
        kept = await tx.outbox.get("job1")
    assert kept is not None
    assert (kept.op_id, kept.fire_at, kept.attempts, kept.last_error) == (b.op_id, later, 0, None)


async def test_a_job_records_what_nas_acknowledged(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.jobs.insert(job_values())
        await tx.jobs.record_nas_arm("job1", T0)
        armed = await tx.jobs.get("job1")
        await tx.jobs.record_nas_arm("job1", None)
        cancelled = await tx.jobs.get("job1")
    assert armed is not None and armed.nas_armed_at == T0
    assert cancelled is not None and cancelled.nas_armed_at is None


async def test_outbox_failure_is_counted(store: Store) -> None:
    async with store.transaction() as tx:
        op = await tx.outbox.queue("job1", NasOp.PROVISION, T0, T0)
        await tx.outbox.note_failure("job1", op.op_id, "HTTP 503", T0)
        await tx.outbox.note_failure("job1", op.op_id, "HTTP 503", T0)
        again = await tx.outbox.get("job1")
    assert again is not None and again.attempts == 2 and again.last_error == "HTTP 503"
    assert again.parked_at is None


async def test_an_outbox_failure_parks_only_when_asked_and_a_new_operation_unparks(
    store: Store,
) -> None:
    later = T0 + timedelta(seconds=30)
    async with store.transaction() as tx:
        op = await tx.outbox.queue("job1", NasOp.PROVISION, T0, T0)
        await tx.outbox.note_failure("job1", op.op_id, "HTTP 422: bad fire_at", later, park=True)
        parked = await tx.outbox.get("job1")
        await tx.outbox.note_failure("job1", op.op_id, "HTTP 503", later, park=False)
        unparked = await tx.outbox.get("job1")
        await tx.outbox.note_failure("job1", op.op_id, "HTTP 422: bad fire_at", later, park=True)
        await tx.outbox.queue("job1", NasOp.CANCEL, None, later)
        replaced = await tx.outbox.get("job1")
    assert parked is not None and parked.parked_at == later and parked.parked
    assert unparked is not None and unparked.parked_at is None and unparked.attempts == 2
    assert replaced is not None
    assert (replaced.op, replaced.parked_at, replaced.attempts, replaced.last_error) == (
        NasOp.CANCEL,
        None,
        0,
        None,
    )


async def test_fencing_token_rejects_a_stale_owner(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.jobs.insert(job_values())
        fire = await tx.fires.insert(fire_values(lease_expires_at=T0 - timedelta(seconds=1)))
    now = T0 + timedelta(seconds=5)
    async with store.transaction() as tx:
        expired = await tx.fires.expired_leases(now)
    assert [f.id for f in expired] == [fire.id]
    async with store.transaction() as tx:
        taken = await tx.fires.take_over_lease(
            fire, owner="node-b", lease_expires_at=now + timedelta(seconds=60), now=now
        )
    assert taken is not None and taken.fencing_token == 2 and taken.attempt == 2
    async with store.transaction() as tx:
        # The original owner wakes up: neither its renewal nor its result may land.
        assert await tx.fires.renew_lease(fire.id, 1, now + timedelta(seconds=60)) is False
        assert not await tx.fires.finish(
            fire.id,
            1,
            status=RunStatus.SUCCEEDED,
            finished_at=now,
            outcome=None,
            output=None,
            error=None,
        )
        # A second take-over with the old token loses too.
        assert (
            await tx.fires.take_over_lease(fire, owner="node-c", lease_expires_at=now, now=now)
            is None
        )
        assert await tx.fires.finish(
            fire.id,
            2,
            status=RunStatus.FAILED,
            finished_at=now,
            outcome="exit 1",
            output=None,
            error="x",
        )
        final = await tx.fires.get(fire.id)
    assert final is not None and final.status == "failed" and final.lease_owner is None


async def test_live_leases_are_not_expired(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.jobs.insert(job_values())
        await tx.fires.insert(fire_values())
        assert await tx.fires.expired_leases(T0 + timedelta(seconds=30)) == []


async def test_delete_job_removes_its_fires(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.jobs.insert(job_values())
        await tx.fires.insert(fire_values())
        await tx.fires.delete_for_jobs(["job1"])
        assert await tx.jobs.delete("job1") is True
        assert await tx.fires.list_for_job("job1") == []
        assert await tx.jobs.get("job1") is None


async def test_a_run_whose_lease_expired_does_not_count_as_running(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.jobs.insert(job_values())
        await tx.fires.insert(fire_values(lease_expires_at=T0 + timedelta(seconds=60)))
        assert await tx.fires.running_count("job1", T0 + timedelta(seconds=59)) == 1
        assert await tx.fires.running_count("job1", T0 + timedelta(seconds=61)) == 0


async def test_long_job_ids_fit(store: Store) -> None:
    long_id = "j" * 200
    async with store.transaction() as tx:
        await tx.jobs.insert(job_values(job_id=long_id))
        await tx.fires.insert(fire_values(job_id=long_id))
        await tx.outbox.queue(long_id, NasOp.CANCEL, None, T0)
        assert (await tx.outbox.get(long_id)) is not None


async def test_a_lease_renewed_after_it_was_read_as_expired_is_not_taken_over(
    store: Store,
) -> None:
    """Between reading a fire as expired and claiming it, its owner may renew (a store blink
    ended): the claim re-checks the expiry, so a live run is never run twice."""
    async with store.transaction() as tx:
        await tx.jobs.insert(job_values())
        fire = await tx.fires.insert(fire_values(lease_expires_at=T0 - timedelta(seconds=1)))
    now = T0 + timedelta(seconds=5)
    async with store.transaction() as tx:
        [expired] = await tx.fires.expired_leases(now)
    async with store.transaction() as tx:  # the owner is back and renews
        assert await tx.fires.renew_lease(fire.id, 1, now + timedelta(seconds=60))
    async with store.transaction() as tx:
        taken = await tx.fires.take_over_lease(
            expired,
            owner="node-b",
            lease_expires_at=now + timedelta(seconds=60),
            now=now,
            expired_before=now,
        )
    assert taken is None
    async with store.transaction() as tx:
        still = await tx.fires.get(fire.id)
    assert still is not None and still.fencing_token == 1 and still.attempt == 1
