"""Fire-token bindings, run on SQLite and (with CHRONOS_TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.fires import fire_dedup_key
from app.store import Store

pytestmark = pytest.mark.asyncio

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
EXPIRES = T0 + timedelta(minutes=2)
KEY_A = fire_dedup_key("job-a", T0)
KEY_B = fire_dedup_key("job-b", T0)
KEY_A_EARLY = fire_dedup_key("job-a", T0 - timedelta(hours=1))


async def bind(store: Store, token_id: str, key: str, expires_at: datetime = EXPIRES) -> str:
    async with store.transaction() as tx:
        return await tx.fire_tokens.bind(token_id, key, expires_at)


async def bound_key(store: Store, token_id: str) -> str | None:
    async with store.transaction() as tx:
        return await tx.fire_tokens.bound_key(token_id)


async def test_the_first_bind_wins_and_later_ones_learn_its_key(store: Store) -> None:
    assert await bind(store, "jti:t1", KEY_A) == KEY_A
    assert await bind(store, "jti:t1", KEY_A) == KEY_A
    assert await bind(store, "jti:t1", KEY_B) == KEY_A
    assert await bind(store, "jti:t1", KEY_A_EARLY, EXPIRES + timedelta(hours=1)) == KEY_A
    assert await bound_key(store, "jti:t1") == KEY_A


async def test_tokens_bind_independently(store: Store) -> None:
    assert await bind(store, "jti:t1", KEY_A) == KEY_A
    assert await bind(store, "sha256:" + "0" * 64, KEY_B) == KEY_B
    assert await bound_key(store, "jti:t2") is None


async def test_a_bind_rolled_back_binds_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.fire_tokens.bind("jti:t1", KEY_A, EXPIRES)
            raise RuntimeError("the fire was refused")

    assert await bind(store, "jti:t1", KEY_B) == KEY_B


async def test_concurrent_binds_agree_on_one_key(store: Store) -> None:
    keys = [fire_dedup_key(f"job-{n}", T0) for n in range(8)]

    bound = await asyncio.gather(*(bind(store, "jti:raced", key) for key in keys))

    assert len(set(bound)) == 1
    assert bound[0] in keys
    assert await bound_key(store, "jti:raced") == bound[0]


async def test_long_ids_and_keys_fit(store: Store) -> None:
    token_id = "jti:" + "x" * 196
    key = fire_dedup_key("j" * 200, T0)

    assert await bind(store, token_id, key) == key


async def test_purge_removes_only_expired_bindings(store: Store) -> None:
    for n, expires_at in enumerate(
        [T0 - timedelta(seconds=1), T0, T0 + timedelta(seconds=1), T0 + timedelta(hours=1)]
    ):
        await bind(store, f"jti:t{n}", KEY_A, expires_at)

    async with store.transaction() as tx:
        purged = await tx.fire_tokens.purge_expired(T0)

    assert purged == 2
    assert [await bound_key(store, f"jti:t{n}") for n in range(4)] == [None, None, KEY_A, KEY_A]


async def test_purge_deletes_at_most_limit_oldest_first(store: Store) -> None:
    for n in range(5):
        await bind(store, f"jti:t{n}", KEY_A, T0 - timedelta(minutes=5 - n))

    async with store.transaction() as tx:
        assert await tx.fire_tokens.purge_expired(T0, limit=3) == 3
    assert [await bound_key(store, f"jti:t{n}") for n in range(5)] == [None] * 3 + [KEY_A] * 2

    async with store.transaction() as tx:
        assert await tx.fire_tokens.purge_expired(T0, limit=3) == 2
        assert await tx.fire_tokens.purge_expired(T0) == 0


async def test_a_purged_token_can_bind_again(store: Store) -> None:
    await bind(store, "jti:t1", KEY_A, T0)
    async with store.transaction() as tx:
        await tx.fire_tokens.purge_expired(T0)

    assert await bind(store, "jti:t1", KEY_B) == KEY_B
