"""Reconcile: make what NAS has armed match what the store wants armed."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from app.clock import Clock
from app.jobs.timing import next_run_after
from app.nas.client import ArmedFire, NasClient, NasError
from app.nas.outbox import OutboxPusher
from app.store import DuplicateFire, JobRecord, Store, fire_dedup_key

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    armed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    in_sync: int = 0
    pending: int = 0
    list_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.list_error is None and self.pending == 0

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "armed": self.armed,
            "cancelled": self.cancelled,
            "missed": self.missed,
            "in_sync": self.in_sync,
            "pending": self.pending,
            "list_error": self.list_error,
        }


class Reconciler:
    def __init__(
        self,
        store: Store,
        nas: NasClient,
        pusher: OutboxPusher,
        *,
        concurrency: int,
        clock: Clock,
    ) -> None:
        self.store = store
        self.nas = nas
        self.pusher = pusher
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
        except NasError as exc:
            # Still arm what is wanted (provision is an idempotent upsert); orphans wait.
            report.list_error = str(exc)
            observed = None
            log.warning("NAS list failed; orphans are not cancelled this time", extra={"error": str(exc)})
        now = self.clock()
        async with self.store.transaction() as tx:
            jobs = await tx.list_jobs()
            queued = {op.job_id for op in await tx.list_nas_ops()}
        wanted = {j.id: j for j in jobs if j.state == "scheduled" and j.next_run_at is not None}

        for job in wanted.values():
            if job.id in queued:
                continue  # the outbox already holds this job's latest operation
            armed = observed.get(job.id) if observed is not None else None
            assert job.next_run_at is not None
            if armed is not None and armed.fire_at == job.next_run_at:
                report.in_sync += 1
                continue
            if job.next_run_at <= now and (observed is not None and armed is None):
                nxt = await self._record_missed(job, now)
                report.missed.append(job.id)
                if nxt is None:
                    continue
                target = nxt
            else:
                target = job.next_run_at
            async with self.store.transaction() as tx:
                await tx.queue_nas_op(job.id, "provision", target, now)
            report.armed.append(job.id)

        if observed is not None:
            for job_id in observed.keys() - wanted.keys():
                if job_id in queued:
                    continue
                async with self.store.transaction() as tx:
                    await tx.queue_nas_op(job_id, "cancel", None, now)
                report.cancelled.append(job_id)

        report.pending = await self.pusher.push_all(concurrency=self.concurrency)
        log.info("reconcile finished", extra=report.as_dict())
        return report

    async def _record_missed(self, job: JobRecord, now: datetime) -> datetime | None:
        """Record the unarmed past fire as `missed` and move the job to its next future fire."""
        assert job.next_run_at is not None
        missed_at = job.next_run_at
        nxt = next_run_after(job, now)
        try:
            async with self.store.transaction() as tx:
                await tx.insert_fire(
                    {
                        "job_id": job.id,
                        "fire_at": missed_at,
                        "dedup_key": fire_dedup_key(job.id, missed_at),
                        "kind": "scheduled",
                        "status": "missed",
                        "attempt": 0,
                        "fencing_token": 0,
                        "admitted_at": now,
                        "finished_at": now,
                        "error": "the fire time passed while nothing was armed at NAS",
                    }
                )
                advanced = await tx.advance_job(
                    job.id,
                    expected_next_run_at=missed_at,
                    values={
                        "next_run_at": nxt,
                        "state": "scheduled" if nxt is not None else "completed",
                        "last_status": "missed",
                        "updated_at": now,
                    },
                )
                if not advanced:
                    raise DuplicateFire(fire_dedup_key(job.id, missed_at))
        except DuplicateFire:
            return None  # a fire arrived meanwhile and moved the job on
        log.warning(
            "fire missed: it passed while nothing was armed",
            extra={"job_id": job.id, "fire_at": missed_at.isoformat()},
        )
        return nxt
