"""The bulk conditional queueing reconcile uses: `queue_provisions_if_unchanged` queues a
provision only for a job still scheduled at the fire given, `queue_cancels_if_unwanted` a
cancel only for a job absent or not wanted; neither ever replaces a pending operation. And
`JobRepository.wanted_arms`, the snapshot they are decided from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.records import OutboxRecord
from app.domain.states import JobState, NasOp
from app.store import Store
from tests.support.records import job_row

pytestmark = pytest.mark.asyncio

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
FIRE_AT = datetime(2030, 1, 1, 13, 0, 0, 123456, tzinfo=UTC)  # microseconds survive the compare
LATER = FIRE_AT + timedelta(hours=1)


async def add(
    store: Store, job_id: str, next_run_at: datetime | None = FIRE_AT, **kw: object
) -> None:
    async with store.transaction() as tx:
        await tx.jobs.insert(job_row(job_id, next_run_at=next_run_at, **kw))  # type: ignore[arg-type]


async def pending(store: Store) -> dict[str, OutboxRecord]:
    async with store.transaction() as tx:
        return {op.job_id: op for op in await tx.outbox.list_all()}


async def test_a_provision_is_queued_only_for_a_job_still_scheduled_at_that_fire(
    store: Store,
) -> None:
    await add(store, "same")
    await add(store, "moved", LATER)
    await add(store, "paused", state=JobState.PAUSED)
    await add(store, "busy")
    async with store.transaction() as tx:
        busy = await tx.outbox.queue("busy", NasOp.CANCEL, None, T0)
    arms = [(job_id, FIRE_AT) for job_id in ("same", "moved", "paused", "busy", "gone")]
    async with store.transaction() as tx:
        await tx.jobs.lock_many([job_id for job_id, _ in arms])
        queued = await tx.outbox.queue_provisions_if_unchanged(arms, T0)
    assert queued == ["same"]
    ops = await pending(store)
    assert ops.keys() == {"same", "busy"}
    assert ops["busy"] == busy  # a pending operation is never replaced
    assert (ops["same"].op, ops["same"].fire_at, ops["same"].attempts) == (
        NasOp.PROVISION,
        FIRE_AT,
        0,
    )


async def test_a_cancel_is_queued_only_for_a_job_absent_or_not_wanted(store: Store) -> None:
    await add(store, "wanted")
    await add(store, "paused", state=JobState.PAUSED)
    await add(store, "completed", None, state=JobState.COMPLETED)
    await add(store, "busy", state=JobState.PAUSED)
    async with store.transaction() as tx:
        busy = await tx.outbox.queue("busy", NasOp.PROVISION, FIRE_AT, T0)
    job_ids = ["wanted", "paused", "completed", "busy", "gone"]
    async with store.transaction() as tx:
        await tx.jobs.lock_many(job_ids)
        queued = await tx.outbox.queue_cancels_if_unwanted(job_ids, T0)
    assert sorted(queued) == ["completed", "gone", "paused"]
    ops = await pending(store)
    assert ops["busy"] == busy
    assert "wanted" not in ops
    assert {ops[j].op for j in queued} == {NasOp.CANCEL}
    assert all(ops[j].fire_at is None and ops[j].claimed_by is None for j in queued)
    assert len({ops[j].op_id for j in queued}) == 3


async def test_nothing_to_queue_is_no_statement(store: Store) -> None:
    async with store.transaction() as tx:
        assert await tx.outbox.queue_provisions_if_unchanged([], T0) == []
        assert await tx.outbox.queue_cancels_if_unwanted([], T0) == []
        assert await tx.outbox.pending_job_ids() == set()


async def test_wanted_arms_are_the_scheduled_jobs_next_fires_oldest_first(store: Store) -> None:
    await add(store, "b", created_at=T0)
    await add(store, "a", LATER, created_at=T0, nas_armed_at=LATER)
    await add(store, "old", created_at=T0 - timedelta(days=1))
    await add(store, "paused", state=JobState.PAUSED)
    await add(store, "completed", None, state=JobState.COMPLETED)
    async with store.transaction() as tx:
        assert await tx.jobs.wanted_arms() == [
            ("old", FIRE_AT, None),
            ("a", LATER, LATER),
            ("b", FIRE_AT, None),
        ]
        await tx.outbox.queue("b", NasOp.PROVISION, FIRE_AT, T0)
        assert await tx.outbox.pending_job_ids() == {"b"}
