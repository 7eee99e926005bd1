"""Pushing queued NAS operations (the outbox) until NAS acknowledges them."""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import timedelta

from app.clock import Clock
from app.domain.records import OutboxRecord
from app.domain.states import JobState, NasOp
from app.logs import log_context
from app.nas.client import NasClient, RetryBudget
from app.nas.errors import CredentialsRefused, NasError, refused_for_good
from app.store import Store, Tx

log = logging.getLogger(__name__)


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=0 if attempts == 0 else min(2**attempts, 600))


class OutboxPusher:
    """Sends each job's pending operation (provision or cancel) to NAS.

    An operation leaves the outbox only when NAS acknowledged it and no newer one replaced
    it meanwhile; failures stay queued, counted, and are retried later: transient ones and
    refused credentials by the maintenance drain with backoff, operations NAS refused for good
    (parked) by the next reconcile or an explicit push of their job.
    """

    def __init__(self, store: Store, nas: NasClient, callback_url: str, clock: Clock) -> None:
        self.store = store
        self.nas = nas
        self.callback_url = callback_url
        self.clock = clock
        # One push per job at a time in this process: a slow, older send must never land at
        # NAS after a newer one (the fire path, admin edits and the maintenance loop overlap).
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, job_id: str) -> asyncio.Lock:
        lock = self._locks.get(job_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[job_id] = lock
        return lock

    async def push_job(
        self, job_id: str, *, budget: RetryBudget | None = None, within: float | None = None
    ) -> bool:
        """Push the job's pending operation, parked or not; True when NAS holds what the job
        needs (its next fire acknowledged, or nothing for a job that has none) and nothing is
        left pending.

        `within` bounds the whole push in seconds, waiting for the job's lock and NAS's answers
        included (a NAS that accepts connections but never answers); past it, the operation
        stays queued and the answer is False.
        """
        with log_context(job_id=job_id):
            try:
                async with asyncio.timeout(within):
                    async with self._lock(job_id):
                        return await self._push_job(job_id, budget)
            except TimeoutError:
                log.warning("NAS push timed out; kept in the outbox")
                return False

    async def _push_job(self, job_id: str, budget: RetryBudget | None) -> bool:
        async with self.store.transaction() as tx:
            op = await self._next_operation(tx, job_id)
        for _ in range(3):  # a newer operation may replace the one in flight
            if op is None:
                return True
            if not await self._send(op, budget):
                return False
            async with self.store.transaction() as tx:
                # Only this very operation leaves the outbox; a newer one stays queued. What NAS
                # acknowledged is what it holds now, whichever operation that was.
                await tx.outbox.ack(job_id, op.op_id)
                await tx.jobs.record_nas_arm(
                    job_id, op.fire_at if op.op == NasOp.PROVISION else None
                )
                op = await self._next_operation(tx, job_id)
        return op is None

    async def _next_operation(self, tx: Tx, job_id: str) -> OutboxRecord | None:
        """The job's pending operation; else, when NAS's acknowledged arm is not what the job
        needs (an arm lost or never recorded), the one queued now to fix it; else None."""
        pending = await tx.outbox.get(job_id)
        if pending is not None:
            return pending
        job = await tx.jobs.get(job_id, for_update=True)
        if job is None or job.armed_as_wanted:
            return None
        if job.state == JobState.SCHEDULED and job.next_run_at is not None:
            return await tx.outbox.queue(job_id, NasOp.PROVISION, job.next_run_at, self.clock())
        return await tx.outbox.queue(job_id, NasOp.CANCEL, None, self.clock())

    async def push_all(
        self, *, concurrency: int, budget: RetryBudget | None = None, backoff: bool = False
    ) -> int:
        """Push every pending operation, `concurrency` at a time; returns how many of those
        pushed remain (NAS did not acknowledge them).

        With `backoff` (the maintenance drain), an operation that failed n times waits 2^n
        seconds (at most 10 min) after its last failure, and parked operations (refused by NAS
        for good) are left for the next reconcile, which pushes without `backoff`.
        """
        async with self.store.transaction() as tx:
            ops = await tx.outbox.list_all()
        if backoff:
            now = self.clock()
            ops = [
                op
                for op in ops
                if not op.parked and now >= op.updated_at + _retry_delay(op.attempts)
            ]
        if not ops:
            return 0
        gate = asyncio.Semaphore(concurrency)

        async def push(job_id: str) -> bool:
            async with gate:
                return await self.push_job(job_id, budget=budget)

        results = await asyncio.gather(*(push(op.job_id) for op in ops))
        return sum(1 for ok in results if not ok)

    async def _send(self, op: OutboxRecord, budget: RetryBudget | None) -> bool:
        try:
            if op.op == NasOp.PROVISION:
                assert op.fire_at is not None
                await self.nas.provision(op.job_id, op.fire_at, self.callback_url, budget=budget)
            else:
                await self.nas.cancel(op.job_id, budget=budget)
        except NasError as exc:
            park = refused_for_good(exc)
            log.warning(
                _failure_event(exc, park),
                extra={
                    "job_id": op.job_id,
                    "op": op.op,
                    "status": exc.status_code,
                    "error": str(exc),
                    "attempts": op.attempts + 1,
                },
            )
            async with self.store.transaction() as tx:
                await tx.outbox.note_failure(op.job_id, op.op_id, str(exc), self.clock(), park=park)
            return False
        log.info(
            "NAS operation acknowledged",
            extra={"op": op.op, "arm_at": op.fire_at.isoformat() if op.fire_at else None},
        )
        return True


def _failure_event(exc: NasError, parked: bool) -> str:
    if parked:
        return "NAS refused the operation; parked in the outbox until the next reconcile"
    if isinstance(exc, CredentialsRefused):
        return "NAS refused the agent's credentials; kept in the outbox, retried with backoff"
    return "NAS operation failed; kept in the outbox, retried with backoff"
