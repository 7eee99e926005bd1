"""The arm audit: shortly after fires are answered, check that NAS still holds each fired
job's next arm, and re-provision the ones it lost.

A 2xx to a fire is sent only after NAS acknowledged the next arm, but NAS may clean up after
that 2xx by job id rather than by schedule id, deleting the very arm just made. The audit
reads NAS's `list` once per window (one call covers every fire answered in it) and repairs
what is missing or different. Without `list`, each fired job is re-provisioned once instead.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from app.clock import Clock
from app.domain.records import JobRecord
from app.domain.states import JobState, NasOp
from app.logs import failure_fields
from app.nas.client import ArmedFire, ListUnsupported, NasClient, NasError
from app.outbox.pusher import OutboxPusher
from app.store import Store

log = logging.getLogger(__name__)

# A fire answered less than this before the check (at most a quarter of the delay) waits for
# the next window: NAS's clean-up after a 2xx must have happened before the audit can see it.
_SETTLE_SECONDS = 1.0
# Jobs waiting for an audit are kept up to this many; past it, newly fired jobs are left to
# the periodic reconcile (and to NAS's re-deliveries, which re-arm too).
_MAX_WAITING = 100_000


@dataclass
class AuditCounts:
    """What the audit did since start; read by tests, logs and status pages."""

    audits: int = 0
    checked: int = 0
    repaired: int = 0
    failed: int = 0
    list_errors: int = 0
    repaired_jobs: list[str] = field(default_factory=list)  # the last audit's repairs


class ArmAudit:
    def __init__(
        self,
        store: Store,
        nas: NasClient,
        pusher: OutboxPusher,
        *,
        delay: float,
        clock: Clock,
        concurrency: int = 8,
    ) -> None:
        self.store = store
        self.nas = nas
        self.pusher = pusher
        self.delay = delay
        self.concurrency = concurrency
        self.clock = clock
        self.settle = min(_SETTLE_SECONDS, delay / 4)
        self.counts = AuditCounts()
        self._waiting: dict[str, float] = {}  # job id -> loop time its fire was answered
        self._wake = asyncio.Event()

    def note(self, job_id: str) -> None:
        """A fire of `job_id` was answered 2xx: audit its next arm within the delay."""
        if job_id not in self._waiting and len(self._waiting) >= _MAX_WAITING:
            return
        self._waiting.setdefault(job_id, asyncio.get_running_loop().time())
        self._wake.set()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def run(self) -> None:
        """Forever: wait for a noted fire, let the window pass, audit what it collected."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            first = min(self._waiting.values(), default=loop.time())
            await asyncio.sleep(max(0.0, first + self.delay - loop.time()))
            cutoff = loop.time() - self.settle
            due = [job_id for job_id, at in self._waiting.items() if at <= cutoff]
            for job_id in due:
                del self._waiting[job_id]
            if not self._waiting:
                self._wake.clear()
            if due:
                try:
                    await self.audit(due)
                except Exception:  # the audit is a safety net: it must outlive any failure
                    log.exception("arm audit failed; its jobs wait for the next one")
                    self.counts.failed += 1
                    self._keep_waiting(due)
                    await asyncio.sleep(self.delay)
            elif self._waiting:
                # Only fires answered within the settle time: give NAS that long first.
                await asyncio.sleep(self.settle)

    async def audit(self, job_ids: list[str]) -> list[str]:
        """Check the next arm of each job against NAS's list; returns the jobs re-provisioned."""
        observed: dict[str, ArmedFire] | None
        try:
            observed = {a.job_id: a for a in await self.nas.list_armed()}
        except ListUnsupported:
            observed = None  # no list: re-provision each fired job once instead
        except NasError as exc:
            self.counts.list_errors += 1
            log.warning(
                "arm audit: NAS list failed; these jobs wait for the next audit",
                extra={**failure_fields(exc), "jobs": len(job_ids)},
            )
            self._keep_waiting(job_ids)
            return []
        self.counts.audits += 1
        self.counts.checked += len(job_ids)
        gate = asyncio.Semaphore(self.concurrency)

        async def check(job_id: str) -> bool:
            async with gate:
                return await self._repair_if_missing(job_id, observed)

        suspects = await self._suspects(job_ids, observed)
        results = await asyncio.gather(*(check(job_id) for job_id in suspects))
        repaired = [job_id for job_id, fixed in zip(suspects, results, strict=True) if fixed]
        self.counts.repaired += len(repaired)
        self.counts.repaired_jobs = repaired
        log.log(
            logging.WARNING if repaired else logging.INFO,
            "arm audit finished",
            extra={
                "checked": len(job_ids),
                "repaired": len(repaired),
                "list_supported": observed is not None,
            },
        )
        return repaired

    async def _suspects(
        self, job_ids: list[str], observed: dict[str, ArmedFire] | None
    ) -> list[str]:
        """The jobs whose next arm NAS may not hold, from one read of them all: scheduled with a
        next fire, nothing pending for them, and NAS's list (when there is one) showing another
        time or none. Each is checked again, locked, before anything is queued."""
        async with self.store.read() as tx:
            wanted = await tx.jobs.next_fires(job_ids)
            pending = {op.job_id for op in await tx.outbox.list_for_jobs(list(wanted))}
        suspects = []
        for job_id, next_run_at in wanted.items():
            armed = observed.get(job_id) if observed is not None else None
            if job_id in pending or (armed is not None and armed.fire_at == next_run_at):
                continue
            suspects.append(job_id)
        return suspects

    def _keep_waiting(self, job_ids: list[str]) -> None:
        loop_time = asyncio.get_running_loop().time()
        for job_id in job_ids:
            self._waiting.setdefault(job_id, loop_time)
        self._wake.set()

    async def _repair_if_missing(self, job_id: str, observed: dict[str, ArmedFire] | None) -> bool:
        """Queue and push a provision of the job's next fire when NAS does not hold it."""
        async with self.store.transaction() as tx:
            job = await tx.jobs.get(job_id, for_update=True)
            if not _wants_arm(job) or await tx.outbox.get(job_id) is not None:
                return False  # nothing to arm, or an operation is already on its way
            assert job is not None and job.next_run_at is not None
            armed = observed.get(job_id) if observed is not None else None
            if armed is not None and armed.fire_at == job.next_run_at:
                return False
            await tx.jobs.record_nas_arm(job_id, None)
            await tx.outbox.queue(job_id, NasOp.PROVISION, job.next_run_at, self.clock())
        log.warning(
            "arm audit: NAS does not hold the job's next arm; re-provisioned",
            extra={
                "job_id": job_id,
                "arm_at": job.next_run_at.isoformat(),
                "nas_fire_at": _describe(armed, observed),
            },
        )
        await self.pusher.push_job(job_id)
        return True


def _wants_arm(job: JobRecord | None) -> bool:
    return job is not None and job.state == JobState.SCHEDULED and job.next_run_at is not None


def _describe(armed: ArmedFire | None, observed: dict[str, ArmedFire] | None) -> str | None:
    if observed is None:
        return "unknown (NAS has no list)"
    if armed is None:
        return None
    return armed.fire_at.isoformat() if isinstance(armed.fire_at, datetime) else "unknown"
