"""Pushing many jobs at once (`push_all`, `push_jobs`): the store's work is shared between
jobs (claims and acknowledgements in batches), and every job still ends as a single push
would leave it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import event

from app.domain.states import NasOp
from app.nas import NasClient
from app.outbox import OutboxPusher
from app.store import Store
from tests.outbox.test_pusher import (
    CALLBACK,
    FIRE_AT,
    ONE_TRY,
    PORTAL,
    T0,
    Pushing,
    ScriptedNas,
    insert_job,
    nas_armed_at,
    ok,
    unavailable,
)
from tests.support import ManualUtcClock

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def pushing(store: Store) -> AsyncIterator[Pushing]:
    nas = ScriptedNas()
    clock = ManualUtcClock(T0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(nas)) as http:
        client = NasClient(http, PORTAL, "nas-token", budget=ONE_TRY)
        yield Pushing(OutboxPusher(store, client, CALLBACK, clock), store, nas, clock)


@contextmanager
def transactions(store: Store) -> Iterator[list[int]]:
    """Counts the transactions the store commits while the block runs."""
    count = [0]

    def commit(_conn: Any) -> None:
        count[0] += 1

    event.listen(store.engine.sync_engine, "commit", commit)
    try:
        yield count
    finally:
        event.remove(store.engine.sync_engine, "commit", commit)


async def queue_jobs(pushing: Pushing, count: int) -> list[str]:
    ids = [f"job-{i:03d}" for i in range(count)]
    for job_id in ids:
        await insert_job(pushing.store, job_id, FIRE_AT)
        await pushing.queue(job_id, NasOp.PROVISION, FIRE_AT)
    return ids


async def test_many_pushes_share_their_transactions(pushing: Pushing) -> None:
    ids = await queue_jobs(pushing, 64)
    with transactions(pushing.store) as committed:
        assert await pushing.pusher.push_all(concurrency=8) == 0
    assert sorted(job for _, job in pushing.nas.calls) == ids
    # One by one, each push took three (claim, acknowledge, release): 192.
    assert committed[0] < 64, committed[0]
    for job_id in ids:
        assert await pushing.pending(job_id) is None
        assert await nas_armed_at(pushing.store, job_id) == FIRE_AT


async def test_failed_pushes_stay_queued_unclaimed_and_counted(pushing: Pushing) -> None:
    ids = await queue_jobs(pushing, 20)

    async def every_other(path: str, body: dict[str, Any]) -> Any:
        if int(body["job_id"][-3:]) % 2:
            return await unavailable(path, body)
        return await ok(path, body)

    pushing.nas.answer = every_other
    assert await pushing.pusher.push_all(concurrency=4) == 10
    for job_id in ids:
        op = await pushing.pending(job_id)
        if int(job_id[-3:]) % 2:
            assert op is not None and op.attempts == 1 and op.claimed_by is None
        else:
            assert op is None


async def test_a_job_whose_push_is_under_way_is_pushed_after_it(pushing: Pushing) -> None:
    ids = await queue_jobs(pushing, 3)
    lock = pushing.pusher.lock_for(ids[1])
    await lock.acquire()  # a fire of ids[1] is being armed in this process
    bulk = asyncio.create_task(pushing.pusher.push_all(concurrency=2))
    await asyncio.sleep(0.2)
    assert ("provision", ids[1]) not in pushing.nas.calls
    assert not bulk.done()
    lock.release()
    assert await asyncio.wait_for(bulk, timeout=10) == 0
    assert await pushing.pending(ids[1]) is None


async def test_a_newer_operation_queued_during_a_bulk_push_is_pushed_too(
    pushing: Pushing,
) -> None:
    ids = await queue_jobs(pushing, 2)
    sent = asyncio.Event()
    go_on = asyncio.Event()

    async def hold_the_first(path: str, body: dict[str, Any]) -> Any:
        if body["job_id"] == ids[0] and path == "provision" and not sent.is_set():
            sent.set()
            await go_on.wait()
        return await ok(path, body)

    pushing.nas.answer = hold_the_first
    bulk = asyncio.create_task(pushing.pusher.push_all(concurrency=1))
    await asyncio.wait_for(sent.wait(), timeout=5)
    await pushing.queue(ids[0], NasOp.CANCEL)  # e.g. paused meanwhile
    go_on.set()
    assert await asyncio.wait_for(bulk, timeout=10) == 0
    assert ("cancel", ids[0]) in pushing.nas.calls
    assert await pushing.pending(ids[0]) is None


async def test_no_chunk_starts_past_the_bound(pushing: Pushing) -> None:
    ids = await queue_jobs(pushing, 40)

    async def slow(path: str, body: dict[str, Any]) -> Any:
        await asyncio.sleep(0.05)
        return await ok(path, body)

    pushing.nas.answer = slow
    done = await pushing.pusher.push_jobs(ids, concurrency=1, start_within=0.01)
    assert 0 < len(done) < len(ids)
    for job_id in ids:
        op = await pushing.pending(job_id)
        assert (op is None) == (job_id in done)
        assert op is None or op.claimed_by is None  # what was not started is not held
