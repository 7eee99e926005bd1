"""Runs admitted fires in the background under a renewed lease, and takes over abandoned ones."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta

from app.clock import Clock
from app.domain.fires import fire_dedup_key
from app.domain.records import FireRecord
from app.domain.states import RunKind, RunStatus
from app.logs import log_context
from app.runner.targets import RunContext, RunResult, TargetRunner, parse_target
from app.store import Store, StoreUnavailable, Tx

log = logging.getLogger(__name__)

_OUTAGE_RETRY_SECONDS = 0.25  # how soon to retry a lease renewal or an outcome in an outage


def run_context(fire: FireRecord) -> RunContext:
    """What the target sees. A catch-up run stands for its slot, so its `Idempotency-Key` is
    the slot's `{job_id}:{fire_at}`, as for the scheduled fire it replaces."""
    key = fire.dedup_key
    if fire.kind == RunKind.CATCHUP:
        key = fire_dedup_key(fire.job_id, fire.fire_at)
    return RunContext(job_id=fire.job_id, fire_at=fire.fire_at, dedup_key=key)


def run_log_fields(fire: FireRecord) -> dict[str, object]:
    """The context every log line of a run carries."""
    return {
        "job_id": fire.job_id,
        "fire_at": fire.fire_at.isoformat(),
        "attempt": fire.attempt,
        "run_key": fire.dedup_key,
    }


class RunExecutor:
    """Owns the background tasks that run jobs on this replica.

    A fire is admitted already leased to this replica (status `running`). The lease is renewed
    while the target runs; the end is written only while the fencing token still matches, so
    a replica that lost its lease can never overwrite a newer attempt. A lease that expires
    (the replica crashed or was stopped) is taken over by `recover_expired`, as attempt N+1
    with the same `Idempotency-Key`.
    """

    def __init__(
        self,
        store: Store,
        targets: TargetRunner,
        *,
        node_id: str,
        lease_seconds: int,
        clock: Clock,
    ) -> None:
        self.store = store
        self.targets = targets
        self.node_id = node_id
        self.lease = timedelta(seconds=lease_seconds)
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        # Fires held here: their target runs, or their outcome waits to be recorded.
        self._local: set[int] = set()
        self.outcomes_waiting = 0  # runs that ended while the store could not record them

    @property
    def active(self) -> int:
        return len(self._tasks)

    def start(
        self, fire: FireRecord, target: dict[str, object], *, job_deleted: bool = False
    ) -> asyncio.Task[None]:
        # The task copies the context as it is created: every line it logs carries the run's.
        with log_context(**run_log_fields(fire)):
            task = asyncio.create_task(
                self._run(fire, target, job_deleted=job_deleted), name=f"run:{fire.dedup_key}"
            )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait_idle(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until every run started here has finished (tests, graceful shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def shutdown(self, grace: float) -> None:
        """Let runs finish for `grace` seconds, then cancel; their leases expire and are resumed."""
        await self.wait_idle(grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def recover_expired(self) -> int:
        """Take over fires whose lease expired, and run them again; returns how many.

        A lease is taken over only once it has been expired for half a lease more, and never
        within a lease of a store outage seen here: holders could not renew while the store was
        down, and a live one renews as soon as it is back."""
        if self.store.unavailable_within(self.lease.total_seconds()):
            return 0
        now = self.clock()
        async with self.store.transaction() as tx:
            expired = await tx.fires.expired_leases(now - self.lease / 2)
        taken = 0
        for fire in expired:
            if fire.id in self._local:
                continue  # its run or its outcome is still held here: never taken over
            async with self.store.transaction() as tx:
                mine = await tx.fires.take_over_lease(
                    fire, owner=self.node_id, lease_expires_at=now + self.lease, now=now
                )
                job = await tx.jobs.get(fire.job_id) if mine else None
            if mine is None:
                continue
            with log_context(**run_log_fields(mine)):
                log.warning(
                    "resuming a run whose lease expired",
                    extra={"previous_owner": fire.lease_owner},
                )
            if job is None:
                self.start(mine, {}, job_deleted=True)
                continue
            self.start(mine, job.target)
            taken += 1
        return taken

    async def _run(
        self, fire: FireRecord, target_data: dict[str, object], *, job_deleted: bool = False
    ) -> None:
        """Run the target under a renewed lease, then record the outcome. The lease is renewed,
        and the fire held here, until the outcome is durably recorded."""
        self._local.add(fire.id)
        lease_lost = asyncio.Event()
        work: asyncio.Task[RunResult] = asyncio.create_task(
            self._execute(fire, target_data, job_deleted)
        )
        renewer = asyncio.create_task(self._renew(fire, work, lease_lost))
        try:
            try:
                result = await work
            except asyncio.CancelledError:
                if not lease_lost.is_set():
                    raise  # shutdown: the lease expires and another attempt resumes the fire
                log.error("run stopped: its lease was lost, another attempt owns the fire")
                return
            await self._finish(fire, result, lease_lost)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            self._local.discard(fire.id)

    async def _execute(
        self, fire: FireRecord, target_data: dict[str, object], job_deleted: bool
    ) -> RunResult:
        if job_deleted:
            return RunResult(RunStatus.FAILED, None, None, "job was deleted")
        try:
            target = parse_target(dict(target_data))
        except ValueError as exc:
            return RunResult(RunStatus.FAILED, None, None, f"invalid target: {exc}")
        return await self.targets.run(target, run_context(fire))

    async def _renew(
        self, fire: FireRecord, work: asyncio.Task[RunResult], lease_lost: asyncio.Event
    ) -> None:
        """Keep the lease until cancelled (once the outcome is recorded). A store outage alone
        never ends it: renewals go on through it, and no replica takes a lease over within a
        lease of an outage it saw. Only a takeover by another attempt (the renewal finds the
        fencing token moved on) ends it, and then the target is stopped at once."""
        interval = max(1.0, self.lease.total_seconds() / 3)
        renewed_at = self.clock()
        wait = interval
        failing_since: float | None = None
        while True:
            await asyncio.sleep(wait)
            try:
                async with self.store.transaction() as tx:
                    kept = await tx.fires.renew_lease(
                        fire.id, fire.fencing_token, self.clock() + self.lease
                    )
            except StoreUnavailable:
                wait = min(interval, _OUTAGE_RETRY_SECONDS)
                now = time.monotonic()
                if failing_since is None or now - failing_since >= 30:
                    failing_since = now
                    log.warning(
                        "could not renew a lease (store unavailable); retrying",
                        extra={"since_renewal_seconds": (self.clock() - renewed_at).seconds},
                    )
                continue
            if not kept:
                lease_lost.set()
                work.cancel()
                return
            renewed_at = self.clock()
            wait = interval
            failing_since = None

    async def _finish(self, fire: FireRecord, result: RunResult, lease_lost: asyncio.Event) -> None:
        """Record the run's end, waiting out a store outage for as long as the process lives
        (the lease is renewed meanwhile). A lost lease means a newer attempt owns the fire."""
        now = self.clock()
        buffered: FireRecord | None = None
        target: dict[str, object] | None = None
        waited = 0.0
        self.outcomes_waiting += 1
        try:
            while True:
                try:
                    async with self.store.transaction() as tx:
                        # Lock the job first: an admission buffering a fire for it waits for us.
                        job = await tx.jobs.get(fire.job_id, for_update=True)
                        recorded = await tx.fires.finish(
                            fire.id,
                            fire.fencing_token,
                            status=result.status,
                            finished_at=now,
                            outcome=result.outcome,
                            output=result.output,
                            error=result.error,
                        )
                        if recorded and job is not None:
                            await tx.jobs.update(fire.job_id, {"last_status": result.status})
                            buffered = await self._take_buffered(tx, fire.job_id, now)
                            target = job.target
                    break
                except StoreUnavailable:
                    if lease_lost.is_set():
                        log.warning("run outcome dropped: its lease was lost meanwhile")
                        return
                    delay = min(_OUTAGE_RETRY_SECONDS * 2 ** min(int(waited), 4), 2.0)
                    if waited == 0 or int(waited + delay) // 30 > int(waited) // 30:
                        log.warning(
                            "run ended; waiting for the store to record its outcome",
                            extra={"status": result.status, "waited_seconds": round(waited, 1)},
                        )
                    await asyncio.sleep(delay)
                    waited += delay
        finally:
            self.outcomes_waiting -= 1
        log.info("run finished", extra={"status": result.status, "recorded": recorded})
        if buffered is not None and target is not None:
            self.start(buffered, target)

    async def _take_buffered(self, tx: Tx, job_id: str, now: datetime) -> FireRecord | None:
        """Claim the job's buffered fire if no other run of the job is going."""
        waiting = await tx.fires.buffered(job_id)
        if waiting is None or await tx.fires.running_count(job_id, now):
            return None
        return await tx.fires.start_buffered(
            waiting, owner=self.node_id, lease_expires_at=now + self.lease, now=now
        )

    async def start_stranded_buffered(self) -> int:
        """Start buffered fires whose job has no run going (their replica died before)."""
        now = self.clock()
        async with self.store.transaction() as tx:
            stranded = await tx.fires.stranded_buffered()
        started = 0
        for fire in stranded:
            async with self.store.transaction() as tx:
                job = await tx.jobs.get(fire.job_id, for_update=True)
                mine = await self._take_buffered(tx, fire.job_id, now) if job else None
            if mine is not None and job is not None:
                self.start(mine, job.target)
                started += 1
        return started
