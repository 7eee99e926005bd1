"""`LeaseRepository`: one holder of a named lease at a time; the holder renews, a lapsed lease
goes to whoever asks next, and replicas asking at once never both get it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from app.store import Store

pytestmark = pytest.mark.asyncio

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
HOLD = timedelta(seconds=15)


async def acquire(store: Store, holder: str, now: datetime = T0, name: str = "purge") -> bool:
    async with store.transaction() as tx:
        return await tx.leases.acquire(name, holder, now, now + HOLD)


async def test_one_holder_at_a_time_until_it_lapses(store: Store) -> None:
    assert await acquire(store, "a") is True
    assert await acquire(store, "b") is False
    assert await acquire(store, "a", T0 + timedelta(seconds=10)) is True  # renewed to t0+25 s
    assert await acquire(store, "b", T0 + timedelta(seconds=20)) is False
    assert await acquire(store, "b", T0 + timedelta(seconds=26)) is True
    assert await acquire(store, "a", T0 + timedelta(seconds=27)) is False
    assert await acquire(store, "a", name="reconcile") is True  # each name its own lease


async def test_a_released_lease_is_free_at_once(store: Store) -> None:
    assert await acquire(store, "a") is True
    async with store.transaction() as tx:
        assert await tx.leases.release("purge", "b") is False
        assert await tx.leases.release("purge", "a") is True
    assert await acquire(store, "b") is True


async def test_replicas_asking_at_once_never_both_get_it(store: Store, database_url: str) -> None:
    others = [Store.from_url(database_url) for _ in range(3)]
    try:
        for round_ in range(5):
            now = T0 + timedelta(minutes=round_)  # each round: the last holder's lease lapsed
            got = await asyncio.gather(
                *(acquire(s, f"node-{i}", now) for i, s in enumerate([store, *others]))
            )
            assert sum(got) == 1, got
    finally:
        for other in others:
            await other.close()
