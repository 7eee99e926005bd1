"""Runs admitted fires in the background under a renewed lease, within the process's capacity,
and takes over abandoned ones."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from app.clock import Clock
from app.domain.records import FireRecord
from app.domain.states import RunStatus
from app.logs import log_context
from app.metrics.registry import Metrics
from app.runner.context import run_context, run_log_fields
from app.runner.leases import RELEASE_TIMEOUT_SECONDS, release_leases
from app.runner.observe import RunObserver
from app.runner.outcomes import OutcomeRecorder, Recorded, RetryPace, persist, take_buffered
from app.runner.targets import RunResult, TargetRunner, parse_target
from app.store import Store, StoreUnavailable

log = logging.getLogger(__name__)


class RunExecutor:
    """Owns the background tasks that run jobs on this replica.

    A fire is admitted already leased to this replica (status `running`). The lease is renewed
    while the target runs and until its outcome is recorded; the end is written only while the
    fencing token still matches, so a replica that lost its lease can never overwrite a newer
    attempt. A lease that expires (the replica crashed or was stopped) is taken over by
    `recover_expired`, as attempt N+1 with the same `Idempotency-Key`.

    At most `max_concurrent_runs` runs are held here at once (target running or outcome
    waiting for the store: the memory they hold is bounded too). A fire started over that is
    put back in the store as `queued`, its lease released; `start_queued` starts queued fires
    in admission order on whichever replica has capacity.
    """

    def __init__(
        self,
        store: Store,
        targets: TargetRunner,
        *,
        node_id: str,
        lease_seconds: int,
        clock: Clock,
        max_concurrent_runs: int = 32,
        pace: RetryPace | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        if max_concurrent_runs < 1:
            raise ValueError("max_concurrent_runs must be at least 1")
        self.store = store
        self.targets = targets
        self.node_id = node_id
        self.lease = timedelta(seconds=lease_seconds)
        self.clock = clock
        self.capacity = max_concurrent_runs
        self.pace = pace or RetryPace()
        self.outcomes = OutcomeRecorder(store, node_id=node_id, lease=self.lease, pace=self.pace)
        self.observe = RunObserver(metrics, clock)  # runs and takeovers in the metrics
        self._tasks: set[asyncio.Task[None]] = set()
        # Fires held here: their target runs, or their outcome waits to be recorded. They count
        # against the capacity.
        self._running: set[int] = set()
        self._ending: set[asyncio.Future[Recorded]] = set()  # outcomes being written
        # Also held here, not counted: fires on their way back to the queue.
        self._local: set[int] = set()
        self._reserved = 0  # slots a claim of queued fires is filling
        self._backlog = False  # queued fires may wait in the store: new ones queue behind them
        self._claiming = asyncio.Lock()
        self.outcomes_waiting = 0  # runs that ended and whose outcome is not recorded yet

    @property
    def active(self) -> int:
        return len(self._tasks)

    @property
    def free_slots(self) -> int:
        return self.capacity - len(self._running) - self._reserved

    def start(
        self, fire: FireRecord, target: dict[str, object], *, job_deleted: bool = False
    ) -> asyncio.Task[None]:
        """Run a fire leased to this replica, or queue it in the store when the process is at
        capacity (or fires queued before it wait)."""
        if self.free_slots > 0 and not self._backlog:
            return self._launch(fire, target, job_deleted=job_deleted)
        self._local.add(fire.id)
        return self._spawn(fire, self._queue(fire))

    def _launch(
        self, fire: FireRecord, target: dict[str, object], *, job_deleted: bool = False
    ) -> asyncio.Task[None]:
        self._running.add(fire.id)
        self._local.add(fire.id)
        return self._spawn(fire, self._run(fire, target, job_deleted=job_deleted))

    def _spawn(self, fire: FireRecord, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        # The task copies the context as it is created: every line it logs carries the run's.
        with log_context(**run_log_fields(fire)):
            task = asyncio.create_task(work, name=f"run:{fire.dedup_key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait_idle(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until every run started here has finished, those a run's end started too
        (tests, graceful shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._tasks:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return
            await asyncio.wait(set(self._tasks), timeout=left)

    async def shutdown(self, grace: float) -> None:
        """Let runs finish for `grace` seconds, then `stop_runs`; close the target runner."""
        await self.wait_idle(grace)
        await self.stop_runs()
        self.targets.close()

    def refuse_new_runs(self) -> None:
        """Stopping: fires started from now on wait in the store as `queued`, none is claimed."""
        self.capacity = 0

    async def stop_runs(self) -> int:
        """Stop the runs held here now (a command's process group is killed), then release their
        leases at once: another replica resumes them at its next round. Returns how many."""
        held = set(self._local)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ending:  # runs that ended: their outcome is written, not their fire released
            await asyncio.wait(set(self._ending), timeout=RELEASE_TIMEOUT_SECONDS)
        return len(await release_leases(self.store, self.node_id, held))

    async def recover_expired(self) -> int:
        """Take over fires whose lease expired, and run (or queue) them again; returns how many.

        A lease is taken over only once it has been expired for half a lease more, and never
        within a lease of a store outage seen here: holders could not renew while the store was
        down, and a live one renews as soon as it is back. A fire held here (its target runs,
        or its outcome waits for the store) is never taken over by this replica."""
        if self.store.unavailable_within(self.lease.total_seconds()):
            return 0
        now = self.clock()
        cutoff = now - self.lease / 2
        async with self.store.transaction() as tx:
            expired = await tx.fires.expired_leases(cutoff)
        taken = 0
        for fire in expired:
            if fire.id in self._local:
                continue  # its run or its outcome is still held here: never taken over
            async with self.store.transaction() as tx:
                mine = await tx.fires.take_over_lease(
                    fire,
                    owner=self.node_id,
                    lease_expires_at=now + self.lease,
                    now=now,
                    expired_before=cutoff,
                )
                job = await tx.jobs.get(fire.job_id) if mine else None
            if mine is None:
                continue
            with log_context(**run_log_fields(mine), job=job.name if job else None):
                log.warning(
                    "resuming a run whose lease expired",
                    extra={"previous_owner": fire.lease_owner, "reason": "lease expired"},
                )
            self.start(mine, job.target if job else {}, job_deleted=job is None)
            taken += 1
            self.observe.took_over()
        return taken

    async def start_queued(self) -> int:
        """Claim queued fires, oldest admission first, for the slots free here, and start them;
        returns how many. Replicas claim side by side (a conditional update per fire; rows
        locked with `SKIP LOCKED` on PostgreSQL)."""
        async with self._claiming:
            want = self.free_slots
            if want <= 0:
                return 0
            self._reserved += want
            try:
                now = self.clock()
                claimed: list[tuple[FireRecord, dict[str, object] | None]] = []
                async with self.store.transaction() as tx:
                    waiting = await tx.fires.queued(limit=want)
                    for fire in waiting:
                        mine = await tx.fires.claim_queued(
                            fire, owner=self.node_id, lease_expires_at=now + self.lease, now=now
                        )
                        if mine is not None:
                            job = await tx.jobs.get(mine.job_id)
                            claimed.append((mine, job.target if job else None))
                self._backlog = len(waiting) >= want  # there may be more
            finally:
                self._reserved -= want
        for fire, target in claimed:
            with log_context(**run_log_fields(fire)):
                log.info("queued run started", extra={"queued_since": fire.admitted_at.isoformat()})
            self._launch(fire, target or {}, job_deleted=target is None)
        return len(claimed)

    async def start_stranded_buffered(self) -> int:
        """Start buffered fires whose job has no run going (their replica died before)."""
        now = self.clock()
        async with self.store.transaction() as tx:
            stranded = await tx.fires.stranded_buffered()
        started = 0
        for fire in stranded:
            async with self.store.transaction() as tx:
                job = await tx.jobs.get(fire.job_id, for_update=True)
                mine = None
                if job is not None:
                    mine = await take_buffered(
                        tx, fire.job_id, now, owner=self.node_id, lease=self.lease
                    )
            if mine is not None and job is not None:
                self.start(mine, job.target)
                started += 1
        return started

    async def _queue(self, fire: FireRecord) -> None:
        """Put a fire this replica has no capacity for back in the store as `queued`."""

        async def write() -> bool:
            async with self.store.transaction() as tx:
                return await tx.fires.queue(fire.id, fire.fencing_token)

        try:
            queued = await persist(write, what="queue the run", pace=self.pace)
        finally:
            self._local.discard(fire.id)
        if not queued:
            log.warning("run not queued: its lease was taken over meanwhile")
            return
        log.info("run queued: this replica is at capacity", extra={"capacity": self.capacity})
        self._backlog = True
        await self._start_queued_quietly()

    async def _start_queued_quietly(self) -> None:
        """Start queued fires for freed slots; a failure is left to the maintenance loop."""
        try:
            await self.start_queued()
        except StoreUnavailable as exc:
            log.warning("could not start queued runs; retried later", extra={"error": str(exc)})

    async def _run(
        self, fire: FireRecord, target_data: dict[str, object], *, job_deleted: bool = False
    ) -> None:
        """Run the target under a renewed lease, then record the outcome. The lease is renewed,
        and the fire held here, until the outcome is durably recorded."""
        lease_lost = asyncio.Event()
        work: asyncio.Task[RunResult] = asyncio.create_task(
            self.observe.run(
                fire, target_data, lambda: self._execute(fire, target_data, job_deleted)
            )
        )
        renewer = asyncio.create_task(self._renew(fire, work, lease_lost))
        done = Recorded(False)
        try:
            try:
                result = await work
            except asyncio.CancelledError:
                if not lease_lost.is_set():
                    raise  # shutdown: the lease expires and another attempt resumes the fire
                log.warning("run stopped: its lease was lost, another attempt owns the fire")
                return
            # Shielded: a shutdown cancelling this run lets its outcome be written (stop_runs
            # waits for it), instead of releasing a finished fire for another run.
            ending = asyncio.ensure_future(self._finish(fire, result, lease_lost))
            self._ending.add(ending)
            ending.add_done_callback(self._ending.discard)
            done = await asyncio.shield(ending)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            self._running.discard(fire.id)
            self._local.discard(fire.id)
        if done.buffered is not None and done.target is not None:
            self.start(done.buffered, done.target)  # its slot is the one just freed
        if self._backlog and self.free_slots > 0:
            await self._start_queued_quietly()

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

        async def renew() -> bool:
            async with self.store.transaction() as tx:
                return await tx.fires.renew_lease(
                    fire.id, fire.fencing_token, self.clock() + self.lease
                )

        pace = RetryPace(min(interval, self.pace.initial), interval, self.pace.warn_every)
        while True:
            await asyncio.sleep(interval)
            if not await persist(renew, what="renew the run's lease", pace=pace):
                lease_lost.set()
                work.cancel()
                return

    async def _finish(
        self, fire: FireRecord, result: RunResult, lease_lost: asyncio.Event
    ) -> Recorded:
        """Record the run's end, waiting out a store outage for as long as the process lives
        (the lease is renewed meanwhile)."""
        self.outcomes_waiting += 1
        try:
            done = await self.outcomes.record(fire, result, self.clock(), lease_lost)
        finally:
            self.outcomes_waiting -= 1
        self.outcomes.log_end(result, done)
        return done
