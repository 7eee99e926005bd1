"""Reconcile: make what NAS has armed match what the store wants armed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from app.clock import Clock
from app.fire.catchup import catch_up
from app.logs import failure_fields, log_context
from app.metrics.registry import Metrics
from app.nas.client import ArmedFire, ListUnsupported, NasClient, NasError
from app.outbox import OutboxPusher
from app.reconcile.diff import WantedArm, plan_arms
from app.reconcile.progress import ReconcilePhase, ReconcileState
from app.runner.executor import RunExecutor
from app.store import DuplicateFire, Store, StoreUnavailable, Tx

log = logging.getLogger(__name__)

# Jobs queued a transaction: a provision binds three values a job, under every database's
# limit on bound values, and a transaction stays short enough not to hold fires back.
QUEUE_BATCH = 500

_FireAt = TypeVar("_FireAt", bound=datetime | None)
_QueueBatch = Callable[[Tx, list[tuple[str, _FireAt]], datetime], Awaitable[list[str]]]


@dataclass
class ReconcileReport:
    armed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    in_sync: int = 0
    pending: int = 0
    list_error: str | None = None
    list_supported: bool = True

    @property
    def ok(self) -> bool:
        return self.list_error is None and self.pending == 0 and not self.errors

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "armed": self.armed,
            "cancelled": self.cancelled,
            "missed": self.missed,
            "errors": self.errors,
            "in_sync": self.in_sync,
            "pending": self.pending,
            "list_error": self.list_error,
            "list_supported": self.list_supported,
        }


class Reconciler:
    def __init__(
        self,
        store: Store,
        nas: NasClient,
        pusher: OutboxPusher,
        executor: RunExecutor,
        *,
        concurrency: int,
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics or Metrics()
        self.nas = nas
        self.pusher = pusher
        self.executor = executor
        self.concurrency = concurrency
        self.clock = clock
        self._lock = asyncio.Lock()
        self.state = ReconcileState()

    async def reconcile(self) -> ReconcileReport:
        """Desired: scheduled jobs with a next fire. Observed: NAS `list`. Arm what is missing
        or different, cancel orphans, record fires that passed unarmed as `missed`, and drain
        the outbox, `concurrency` NAS calls at a time."""
        async with self._lock:
            self.state.start(self.clock())
            report: ReconcileReport | None = None
            try:
                report = await self._reconcile()
                return report
            finally:
                self.state.finish(
                    self.clock(),
                    report.as_dict() if report is not None else None,
                    None if report is not None else "reconcile failed (see the log)",
                )

    async def _reconcile(self) -> ReconcileReport:
        started = time.perf_counter()
        report = ReconcileReport()
        observed: dict[str, ArmedFire] | None
        try:
            observed = {a.job_id: a for a in await self.nas.list_armed()}
        except ListUnsupported:
            # NAS has no list: arm every wanted fire (provision is idempotent by dedup key);
            # orphans cannot be seen, so none is cancelled.
            report.list_supported = False
            observed = None
            log.warning("NAS has no list endpoint; every wanted arm is provisioned")
        except NasError as exc:
            # Still arm what is wanted (provision is an idempotent upsert); orphans wait.
            report.list_error = str(exc)
            observed = None
            log.warning(
                "NAS list failed; orphans are not cancelled this time", extra=failure_fields(exc)
            )
        now = self.clock()
        async with self.store.transaction() as tx:
            wanted = [WantedArm(*arm) for arm in await tx.jobs.wanted_arms()]
            queued = await tx.outbox.pending_job_ids()
        plan = plan_arms(wanted, queued, observed, now)
        report.in_sync = plan.in_sync
        orphan_count = len(plan.orphans) if observed is not None else 0
        self.state.enter(
            ReconcilePhase.QUEUEING, len(plan.missed) + len(plan.provision) + orphan_count
        )

        armed: set[str] = set()
        for arm in plan.missed:
            # Passed, and NAS holds nothing for it (or another time): record it, maybe run
            # once, arm the next (queued by the catch-up). Rare: one transaction each.
            report.missed.append(arm.job_id)
            try:
                if await self._catch_up(arm, now) is not None:
                    armed.add(arm.job_id)
            except StoreUnavailable:
                raise
            except Exception:  # one broken job must not stop the others from being armed
                log.exception("reconcile failed for a job", extra={"job_id": arm.job_id})
                report.errors.append(arm.job_id)
            self.state.advance(1)
        armed |= await self._queue_batched(plan.provision, self._queue_provisions, now, report)
        report.armed = [arm.job_id for arm in wanted if arm.job_id in armed]  # snapshot order
        if observed is not None:
            orphans = [(job_id, None) for job_id in plan.orphans]
            cancelled = await self._queue_batched(orphans, self._queue_cancels, now, report)
            report.cancelled = [job_id for job_id in plan.orphans if job_id in cancelled]

        if plan.seen_armed:
            async with self.store.transaction() as tx:
                await tx.jobs.record_nas_arms(list(plan.seen_armed.items()))
        # Without backoff: every pending operation, parked ones included (NAS refused them
        # for good; the maintenance drain leaves them to this retry).
        self.state.enter(ReconcilePhase.PUSHING, len(queued | armed | set(report.cancelled)))
        report.pending = await self.pusher.push_all(concurrency=self.concurrency)
        # Counts, not ids: a reconcile of thousands of jobs stays one readable line.
        counts = {k: len(v) if isinstance(v, list) else v for k, v in report.as_dict().items()}
        log.log(logging.INFO if report.ok else logging.WARNING, "reconcile finished", extra=counts)
        self.metrics.reconciled(time.perf_counter() - started, reconcile_actions(report))
        return report

    async def _queue_batched(
        self,
        ops: list[tuple[str, _FireAt]],
        queue: _QueueBatch[_FireAt],
        now: datetime,
        report: ReconcileReport,
    ) -> set[str]:
        """Queue `ops` with `queue`, QUEUE_BATCH jobs a transaction; the ids queued. A batch
        that fails is tried again one job at a time, so that one broken job (reported in
        `errors`) does not keep the others from being queued."""
        queued: set[str] = set()
        batches = deque(ops[i : i + QUEUE_BATCH] for i in range(0, len(ops), QUEUE_BATCH))
        while batches:
            batch = batches.popleft()
            try:
                async with self.store.transaction() as tx:
                    queued.update(await queue(tx, batch, now))
                self.state.advance(len(batch))
            except StoreUnavailable:
                raise
            except Exception:
                if len(batch) > 1:
                    batches.extendleft([op] for op in reversed(batch))
                    continue
                job_id = batch[0][0]
                log.exception("reconcile failed for a job", extra={"job_id": job_id})
                report.errors.append(job_id)
                self.state.advance(1)
        return queued

    @staticmethod
    async def _queue_provisions(
        tx: Tx, arms: list[tuple[str, datetime]], now: datetime
    ) -> list[str]:
        """Provision each job's fire as the snapshot saw it, only if the job still is as seen
        and nothing else was queued for it meanwhile: never overwrite a newer operation with
        one from an old snapshot."""
        await tx.jobs.lock_many([job_id for job_id, _ in arms])
        return await tx.outbox.queue_provisions_if_unchanged(arms, now)

    @staticmethod
    async def _queue_cancels(tx: Tx, orphans: list[tuple[str, None]], now: datetime) -> list[str]:
        """Cancel each orphan, unless it was created or resumed meanwhile (not an orphan any
        more) or something else was queued for it."""
        job_ids = [job_id for job_id, _ in orphans]
        await tx.jobs.lock_many(job_ids)
        return await tx.outbox.queue_cancels_if_unwanted(job_ids, now)

    async def _catch_up(self, seen: WantedArm, now: datetime) -> datetime | None:
        """Record the unarmed passed slots (and maybe run once now); returns the next fire."""
        try:
            async with self.store.transaction() as tx:
                job = await tx.jobs.get(seen.job_id, for_update=True)
                if job is None or job.next_run_at != seen.fire_at:
                    return None  # a fire, an edit or another replica moved the job on meanwhile
                result = await catch_up(
                    tx, job, now, owner=self.executor.node_id, lease=self.executor.lease
                )
        except DuplicateFire:
            return None  # a fire or another replica moved the job on meanwhile
        with log_context(
            job_id=job.id, fire_at=job.next_run_at.isoformat() if job.next_run_at else None
        ):
            log.warning(
                "fire missed: it passed while nothing was armed",
                extra={
                    "job": job.name,
                    "reason": "not armed at NAS when it passed",
                    "slots": result.missed,
                    "catch_up_run": result.run is not None,
                },
            )
        if result.run is not None:
            self.executor.start(result.run, job.target)
        return result.next_run_at


def reconcile_actions(report: ReconcileReport) -> dict[str, int]:
    """What a reconcile did, as `chronos_reconcile_actions_total{action}` counts it."""
    return {
        "armed": len(report.armed),
        "cancelled": len(report.cancelled),
        "missed": len(report.missed),
        "error": len(report.errors),
    }
