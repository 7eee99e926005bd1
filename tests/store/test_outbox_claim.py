"""`OutboxRepository.claim`: one pusher holds a job's operations at a time, for a lease; a
newer operation queued meanwhile keeps the claim; the claim is released by its owner, by a
failure noted, or lapses. On PostgreSQL a row another transaction holds is skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.states import NasOp
from app.store import Store

pytestmark = pytest.mark.asyncio

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
FIRE_AT = datetime(2030, 1, 1, 13, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


async def queue(store: Store, job_id: str = "job-a", fire_at: datetime = FIRE_AT) -> str:
    async with store.transaction() as tx:
        return (await tx.outbox.queue(job_id, NasOp.PROVISION, fire_at, T0)).op_id


async def claim(store: Store, owner: str, now: datetime = T0) -> str | None:
    async with store.transaction() as tx:
        claimed = await tx.outbox.claim("job-a", owner, now, now + LEASE)
    return claimed.claimed_by if claimed is not None else None


async def test_nothing_queued_is_nothing_claimed(store: Store) -> None:
    assert await claim(store, "a") is None


async def test_a_claim_excludes_other_pushers_until_released(store: Store) -> None:
    await queue(store)
    assert await claim(store, "a") == "a"
    assert await claim(store, "b") is None
    assert await claim(store, "a") == "a"  # the owner renews its own claim
    async with store.transaction() as tx:
        assert await tx.outbox.release("job-a", "b") is False  # not b's to release
        assert await tx.outbox.release("job-a", "a") is True
    assert await claim(store, "b") == "b"


async def test_a_claim_lapses_after_its_lease(store: Store) -> None:
    await queue(store)
    assert await claim(store, "a") == "a"
    assert await claim(store, "b", T0 + LEASE) is None  # still valid at its last instant
    assert await claim(store, "b", T0 + LEASE + timedelta(seconds=1)) == "b"


async def test_a_newer_operation_keeps_the_claim_and_only_its_holder_releases_it(
    store: Store,
) -> None:
    await queue(store)
    assert await claim(store, "a") == "a"
    newer = await queue(store, fire_at=FIRE_AT + timedelta(hours=1))
    async with store.transaction() as tx:
        pending = await tx.outbox.get("job-a")
    assert pending is not None and pending.op_id == newer
    assert (pending.claimed_by, pending.claimed_until) == ("a", T0 + LEASE)
    assert await claim(store, "b") is None  # a sends the newer one before it lets go
    async with store.transaction() as tx:
        await tx.outbox.note_failure("job-a", newer, "HTTP 503", T0)
        assert not await tx.outbox.release("job-a", "b")  # not b's to release
    assert await claim(store, "b") is None  # a failure counts; the claim stays a's
    async with store.transaction() as tx:
        assert await tx.outbox.release("job-a", "a")
    assert await claim(store, "b") == "b"


async def test_a_row_another_transaction_holds_is_skipped_not_waited_for(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("SQLite serializes writers (BEGIN IMMEDIATE): there is nothing to skip")
    await queue(store)
    async with store.transaction() as first:
        assert await first.outbox.claim("job-a", "a", T0, T0 + LEASE) is not None
        async with store.transaction() as second:
            assert await second.outbox.claim("job-a", "b", T0, T0 + LEASE) is None
