"""Reconcile: make what NAS has armed match what the store wants armed."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from app.clock import Clock
from app.domain.records import JobRecord
from app.domain.states import JobState, NasOp
from app.fire.catchup import catch_up
from app.logs import log_context
from app.nas.client import ArmedFire, ListUnsupported, NasClient, NasError
from app.outbox import OutboxPusher
from app.runner.executor import RunExecutor
from app.store import DuplicateFire, Store, StoreUnavailable

log = logging.getLogger(__name__)


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
    ) -> None:
        self.store = store
        self.nas = nas
        self.pusher = pusher
        self.executor = executor
        self.concurrency = concurrency
        self.clock = clock
        self._lock = asyncio.Lock()

    async def reconcile(self) -> ReconcileReport:
        """Desired: scheduled jobs with a next fire. Observed: NAS `list`. Arm what is missing
        or different, cancel orphans, record fires that passed unarmed as `missed`, and drain
        the outbox, `concurrency` NAS calls at a time."""
        async with self._lock:
            return await self._reconcile()

    async def _reconcile(self) -> ReconcileReport:
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
                "NAS list failed; orphans are not cancelled this time", extra={"error": str(exc)}
            )
        now = self.clock()
        async with self.store.transaction() as tx:
            jobs = await tx.jobs.list_all()
            queued = {op.job_id for op in await tx.outbox.list_all()}
        wanted = {
            j.id: j for j in jobs if j.state == JobState.SCHEDULED and j.next_run_at is not None
        }

        seen_armed: dict[str, datetime] = {}  # in sync at NAS, not yet recorded as such
        for job in wanted.values():
            if job.id in queued:
                continue  # the outbox already holds this job's latest operation
            armed = observed.get(job.id) if observed is not None else None
            assert job.next_run_at is not None
            if armed is not None and armed.fire_at == job.next_run_at:
                report.in_sync += 1
                if job.nas_armed_at != armed.fire_at:
                    seen_armed[job.id] = armed.fire_at
                continue
            try:
                if job.next_run_at <= now and observed is not None:
                    # Passed, and NAS holds nothing for it (or another time): record it, maybe
                    # run once, arm the next (queued by the catch-up).
                    report.missed.append(job.id)
                    if await self._catch_up(job, now) is not None:
                        report.armed.append(job.id)
                elif await self._queue_if_unchanged(job.id, job, now):
                    report.armed.append(job.id)
            except StoreUnavailable:
                raise
            except Exception:  # one broken job must not stop the others from being armed
                log.exception("reconcile failed for a job", extra={"job_id": job.id})
                report.errors.append(job.id)

        if observed is not None:
            for job_id in observed.keys() - wanted.keys():
                if job_id not in queued and await self._queue_if_unchanged(job_id, None, now):
                    report.cancelled.append(job_id)

        if seen_armed:
            async with self.store.transaction() as tx:
                for job_id, fire_at in seen_armed.items():
                    await tx.jobs.record_nas_arm(job_id, fire_at)
        # Without backoff: every pending operation, parked ones included (NAS refused them
        # for good; the maintenance drain leaves them to this retry).
        report.pending = await self.pusher.push_all(concurrency=self.concurrency)
        log.info("reconcile finished", extra=report.as_dict())
        return report

    async def _queue_if_unchanged(self, job_id: str, seen: JobRecord | None, now: datetime) -> bool:
        """Queue what the snapshot called for (provision `seen`'s fire, or cancel an orphan
        when `seen` is None) only if the job still is as seen and nothing else was queued for
        it meanwhile: never overwrite a newer operation with one from an old snapshot."""
        async with self.store.transaction() as tx:
            current = await tx.jobs.get(job_id, for_update=True)
            if await tx.outbox.get(job_id) is not None:
                return False
            wanted = (
                current is not None and current.state == JobState.SCHEDULED and current.next_run_at
            )
            if seen is None:
                if wanted:
                    return False  # created or resumed meanwhile: not an orphan any more
                await tx.outbox.queue(job_id, NasOp.CANCEL, None, now)
                return True
            if not wanted or current is None or current.next_run_at != seen.next_run_at:
                return False
            await tx.outbox.queue(job_id, NasOp.PROVISION, seen.next_run_at, now)
            return True

    async def _catch_up(self, job: JobRecord, now: datetime) -> datetime | None:
        """Record the unarmed passed slots (and maybe run once now); returns the next fire."""
        try:
            async with self.store.transaction() as tx:
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
                extra={"slots": result.missed, "catch_up_run": result.run is not None},
            )
        if result.run is not None:
            self.executor.start(result.run, job.target)
        return result.next_run_at
