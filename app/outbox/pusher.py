"""Pushing queued NAS operations (the outbox) until NAS acknowledges them."""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from datetime import timedelta
from enum import Enum

from app.clock import Clock
from app.domain.records import OutboxRecord
from app.domain.states import JobState, NasOp
from app.logs import failure_fields, log_context
from app.nas.client import NasClient, RetryBudget
from app.nas.errors import CredentialsRefused, NasError, refused_for_good
from app.outbox.acks import AckBatcher
from app.outbox.bulk import push_many
from app.store import Store, StoreUnavailable, Tx

log = logging.getLogger(__name__)


# A claim on a job's operations lasts a few NAS call budgets (at least CLAIM_FLOOR seconds,
# which also covers one request's read timeout past the budget): a pusher that dies
# mid-push holds the job back that long at most.
CLAIM_BUDGETS = 3
CLAIM_FLOOR = 30.0
CLAIM_POLL_SECONDS = 0.05  # how often a waiting push looks whether the claim was released


class _Left(Enum):
    """Why a push has no operation to send."""

    NOTHING = "nothing"  # NAS holds what the job needs
    CLAIMED_ELSEWHERE = "claimed_elsewhere"  # another replica is pushing the job's operations


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=0 if attempts == 0 else min(2**attempts, 600))


class OutboxPusher:
    """Sends each job's pending operation (provision or cancel) to NAS.

    An operation leaves the outbox only when NAS acknowledged it and no newer one replaced
    it meanwhile; failures stay queued, counted, and are retried later: transient ones and
    refused credentials by the maintenance drain with backoff, operations NAS refused for good
    (parked) by the next reconcile or an explicit push of their job.

    One pusher at a time sends a job's operations, across replicas: a push claims the job's
    outbox row under `node_id` for a short lease (`OutboxRepository.claim`) and releases it
    when NAS answered. A push that finds the row claimed by another live pusher sends nothing:
    that pusher sends the newest operation before it lets go.
    """

    def __init__(
        self,
        store: Store,
        nas: NasClient,
        callback_url: str,
        clock: Clock,
        *,
        node_id: str | None = None,
    ) -> None:
        self.store = store
        self.nas = nas
        self.callback_url = callback_url
        self.clock = clock
        # Whose claim a claim is: unique per pusher, so two processes never share one.
        self.node_id = node_id or f"pusher-{uuid.uuid4().hex[:16]}"
        # One push per job at a time in this process: a slow, older send must never land at
        # NAS after a newer one (the fire path, admin edits and the maintenance loop overlap).
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.acks = AckBatcher(store, self.node_id)

    def lock_for(self, job_id: str) -> asyncio.Lock:
        """The lock held while this process pushes the job's operations."""
        return self._lock(job_id)

    async def push_job_locked(self, job_id: str, budget: RetryBudget | None) -> bool | None:
        """`push_job` for a caller that holds the job's lock: None when another replica holds
        the job's claim."""
        with log_context(job_id=job_id):
            return await self._push_job(job_id, budget)

    def _lock(self, job_id: str) -> asyncio.Lock:
        lock = self._locks.get(job_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[job_id] = lock
        return lock

    async def push_job(
        self,
        job_id: str,
        *,
        budget: RetryBudget | None = None,
        within: float | None = None,
        claimed: OutboxRecord | None = None,
    ) -> bool:
        """Push the job's pending operation, parked or not; True when NAS holds what the job
        needs (its next fire acknowledged, or nothing for a job that has none) and nothing is
        left pending.

        `within` bounds the whole push in seconds, waiting for the job's lock and NAS's answers
        included (a NAS that accepts connections but never answers); past it, the operation
        stays queued and the answer is False.

        When another replica holds the job's claim, nothing is sent: without `within` the
        answer is False at once; with it (a caller waits for the arm), the push polls until
        the claim is released or lapses, within that bound, and then pushes what is left.

        `claimed` is the job's operation as this pusher already claimed it (queued and claimed
        in the caller's own transaction, as a fire's admission does): it is sent without
        another round trip to the store.
        """
        with log_context(job_id=job_id):
            try:
                async with asyncio.timeout(within):
                    async with self._lock(job_id):
                        if claimed is not None and claimed.claimed_by == self.node_id:
                            return await self._push_from(claimed, budget) is True
                        while (done := await self._push_job(job_id, budget)) is None:
                            if within is None:
                                log.info("NAS push skipped: another replica is pushing the job")
                                return False
                            await asyncio.sleep(CLAIM_POLL_SECONDS)
                        return done
            except TimeoutError:
                log.warning("NAS push timed out; kept in the outbox")
                return False

    def claim_lease(self, budget: RetryBudget | None) -> timedelta:
        """How long a claim made for a push within `budget` lasts."""
        return timedelta(
            seconds=max(CLAIM_FLOOR, CLAIM_BUDGETS * (budget or self.nas.budget).max_seconds)
        )

    async def _push_job(self, job_id: str, budget: RetryBudget | None) -> bool | None:
        """Push under the job's claim; None when another replica holds it."""
        async with self.store.transaction() as tx:
            op = await self._claim_next(tx, job_id, self.claim_lease(budget))
        if not isinstance(op, OutboxRecord):
            return None if op == _Left.CLAIMED_ELSEWHERE else True
        return await self._push_from(op, budget)

    async def _push_from(self, op: OutboxRecord, budget: RetryBudget | None) -> bool | None:
        """Push `op`, claimed by this pusher, then what replaced it; the claim is let go when
        the job's row is gone (acknowledged) or released when something is left."""
        try:
            done = await self._push_claimed(op, budget, self.claim_lease(budget))
        except asyncio.CancelledError:
            # Past the caller's time budget, a NAS call may still be in flight: the claim is
            # left to lapse, so no other replica sends a newer operation that this old one
            # could land behind.
            raise
        except BaseException:
            await self._release(op.job_id)
            raise
        if done is not True:
            await self._release(op.job_id)
        return done

    async def _push_claimed(
        self, op: OutboxRecord, budget: RetryBudget | None, lease: timedelta
    ) -> bool | None:
        for _ in range(3):  # a newer operation may replace the one in flight
            if not await self._send(op, budget):
                return False
            # Only this very operation leaves the outbox; a newer one stays queued. What NAS
            # acknowledged is what it holds now, whichever operation that was. Written in a
            # batch with the other acknowledgements of the moment.
            if await self.acks.ack(op):
                return True  # the row is gone, and the claim with it
            async with self.store.transaction() as tx:
                left = await self._claim_next(tx, op.job_id, lease)
            if not isinstance(left, OutboxRecord):
                return None if left == _Left.CLAIMED_ELSEWHERE else True
            op = left
        return False  # replaced three times while in flight: the drain pushes the rest

    async def _claim_next(self, tx: Tx, job_id: str, lease: timedelta) -> OutboxRecord | _Left:
        """The job's next operation, claimed (or the claim renewed) for this pusher."""
        if await self._next_operation(tx, job_id) is None:
            return _Left.NOTHING
        now = self.clock()
        claimed = await tx.outbox.claim(job_id, self.node_id, now, now + lease)
        return claimed if claimed is not None else _Left.CLAIMED_ELSEWHERE

    async def _release(self, job_id: str) -> None:
        """Let go of the job's claim; if the store cannot be reached, the claim lapses."""
        try:
            async with asyncio.timeout(5.0), self.store.transaction() as tx:
                await tx.outbox.release(job_id, self.node_id)
        except (StoreUnavailable, TimeoutError) as exc:
            log.warning("could not release the outbox claim; it lapses", extra={"error": str(exc)})

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
        now = self.clock()
        ops = [op for op in ops if not op.claimed_by_other(self.node_id, now)]
        if backoff:
            ops = [
                op
                for op in ops
                if not op.parked and now >= op.updated_at + _retry_delay(op.attempts)
            ]
        if not ops:
            return 0
        job_ids = [op.job_id for op in ops]
        done = await push_many(self, job_ids, concurrency=concurrency, budget=budget)
        return len(job_ids) - len(done)

    async def push_jobs(
        self,
        job_ids: list[str],
        *,
        concurrency: int,
        budget: RetryBudget | None = None,
        start_within: float | None = None,
    ) -> set[str]:
        """Push these jobs' pending operations, `concurrency` NAS calls at a time, claimed and
        acknowledged in chunks (see `app.outbox.bulk`); the jobs NAS now holds as wanted. With
        `start_within`, no chunk starts past that many seconds."""
        return await push_many(
            self, job_ids, concurrency=concurrency, budget=budget, start_within=start_within
        )

    async def send(self, op: OutboxRecord, budget: RetryBudget | None) -> bool:
        """Send `op` to NAS; a failure is counted on the operation (see `_send`)."""
        return await self._send(op, budget)

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
                    **failure_fields(exc),
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
