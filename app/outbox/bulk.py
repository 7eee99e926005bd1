"""Pushing many jobs' operations at once (reconcile, the maintenance drain): the store's work
is shared between jobs instead of done job by job.

Workers (as many as the concurrency allows NAS calls in flight) each take a chunk of jobs,
claim the chunk's operations in one statement, send them to NAS one after the other, and
have their acknowledgements written in the pusher's batches; a failed send releases its
claim with the others of the chunk in one statement. While a worker holds a chunk, it holds
the chunk's per-job locks, as a single push holds its job's: a fire of one of those jobs waits
for at most a chunk's NAS calls. A job whose lock is taken (its fire is being armed) is left
to that push, then pushed on its own; anything unusual (a newer operation queued meanwhile,
NAS's arm not what the job needs) goes through the single-job path, which handles it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Protocol

from app.clock import Clock
from app.domain.records import OutboxRecord
from app.nas.client import RetryBudget
from app.outbox.acks import AckBatcher
from app.store import Store


class OutboxPusher(Protocol):
    """What a bulk push uses of `app.outbox.pusher.OutboxPusher`."""

    store: Store
    clock: Clock
    node_id: str
    acks: AckBatcher

    def lock_for(self, job_id: str) -> asyncio.Lock: ...
    def claim_lease(self, budget: RetryBudget | None) -> timedelta: ...
    async def send(self, op: OutboxRecord, budget: RetryBudget | None) -> bool: ...
    async def push_job(self, job_id: str, *, budget: RetryBudget | None = None) -> bool: ...
    async def push_job_locked(self, job_id: str, budget: RetryBudget | None) -> bool | None: ...


CHUNK = 16  # jobs a worker claims at once


async def push_many(
    pusher: OutboxPusher,
    job_ids: list[str],
    *,
    concurrency: int,
    budget: RetryBudget | None,
    start_within: float | None = None,
) -> set[str]:
    """Push the pending operations of `job_ids`; returns the jobs whose operations NAS
    acknowledged (or that had nothing to push). With `start_within`, no chunk starts later
    than that many seconds from now (the rest stays queued for the drain). Every worker ends
    before this returns; a store outage is raised then."""
    chunks: Iterator[list[str]] = (job_ids[i : i + CHUNK] for i in range(0, len(job_ids), CHUNK))
    loop = asyncio.get_running_loop()
    deadline = None if start_within is None else loop.time() + start_within
    done: set[str] = set()

    async def worker() -> None:
        for chunk in chunks:  # shared: each chunk goes to one worker
            if deadline is not None and loop.time() >= deadline:
                return
            done.update(await _push_chunk(pusher, chunk, budget))

    workers = max(1, min(concurrency, -(-len(job_ids) // CHUNK)))
    results = await asyncio.gather(*(worker() for _ in range(workers)), return_exceptions=True)
    for failure in results:
        if isinstance(failure, BaseException):
            raise failure
    return done


async def _push_chunk(
    pusher: OutboxPusher, chunk: list[str], budget: RetryBudget | None
) -> set[str]:
    busy = [job_id for job_id in chunk if pusher.lock_for(job_id).locked()]
    mine = [job_id for job_id in chunk if job_id not in busy]
    locks = [pusher.lock_for(job_id) for job_id in mine]
    for lock in locks:
        await lock.acquire()  # free (checked above, nothing awaited since): no wait
    try:
        done = await _push_locked(pusher, mine, budget)
    finally:
        for lock in locks:
            lock.release()
    for job_id in busy:  # after the push that holds it: what is left of it, if anything
        if await pusher.push_job(job_id, budget=budget):
            done.add(job_id)
    return done


async def _push_locked(
    pusher: OutboxPusher, job_ids: list[str], budget: RetryBudget | None
) -> set[str]:
    now = pusher.clock()
    async with pusher.store.transaction() as tx:
        claimed = await tx.outbox.claim_many(
            job_ids, pusher.node_id, now, now + pusher.claim_lease(budget)
        )
    order = {job_id: i for i, job_id in enumerate(job_ids)}
    claimed.sort(key=lambda op: order[op.job_id])
    failed: list[str] = []
    acked: list[tuple[OutboxRecord, asyncio.Future[bool]]] = []
    try:
        for op in claimed:
            if await pusher.send(op, budget):
                acked.append((op, pusher.acks.ack(op)))
            else:
                failed.append(op.job_id)
        followed = [op.job_id for op, done in acked if not await done]
    finally:
        if failed:
            async with pusher.store.transaction() as tx:
                await tx.outbox.release_many(failed, pusher.node_id)
    done = {op.job_id for op, _ in acked if op.job_id not in followed}
    # A newer operation queued meanwhile, NAS's arm not what the job needs, or nothing that
    # could be claimed here (nothing pending, or another replica holds it): the single path.
    got = {op.job_id for op in claimed}
    for job_id in followed + [j for j in job_ids if j not in got]:
        if await pusher.push_job_locked(job_id, budget) is True:
            done.add(job_id)
    return done
