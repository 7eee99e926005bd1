"""The agent's background work: the startup reconcile and the maintenance loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from app.clock import Clock
from app.logs import failure_fields
from app.runner.outcomes import queue_due_retries
from app.services import Services
from app.store import Store, StoreUnavailable

log = logging.getLogger(__name__)


async def startup_reconcile(services: Services) -> None:
    """Reconcile until NAS's list could be read once; `/readyz` turns ready then.

    Runs beside the fire endpoint: startup never blocks fires."""
    delay = 1.0
    while True:
        try:
            report = await services.reconciler.reconcile()
        except StoreUnavailable as exc:
            services.startup.last_error = f"store unavailable ({exc})"
        except Exception as exc:  # never give up: /readyz would stay 503 for good
            log.exception("startup reconcile failed")
            services.startup.last_error = f"reconcile failed ({exc.__class__.__name__})"
        else:
            # Finished once NAS answered `list`: operations NAS refused or could not take yet
            # stay in the outbox, retried by the maintenance loop; they do not block readiness.
            if report.list_error is None:
                services.startup.done = True
                services.startup.last_error = None
                return
            services.startup.last_error = report.list_error
        log.warning(
            "startup reconcile incomplete; retrying", extra={"error": services.startup.last_error}
        )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


async def maintenance_loop(services: Services, interval: float) -> None:
    """The housekeeping steps, each in its own loop with its own cadence, so that none waits
    behind another (resuming runs never waits behind a slow or hung NAS push): resume runs
    whose lease expired, start queued and stranded buffered runs and due retries, push the
    outbox, purge old
    completed jobs and fire tokens, and reconcile every `CHRONOS_RECONCILE_INTERVAL_SECONDS`.
    The purges and the periodic reconcile run on one replica at a time (`one_replica`).
    Runs until cancelled; the task group cancels and awaits every step then."""
    async with asyncio.TaskGroup() as group:
        for step in housekeeping_steps(services, interval):
            group.create_task(run_step(step), name=f"maintenance: {step.name}")


@dataclass(frozen=True)
class Step:
    name: str
    every: float  # seconds between the end of one round and the start of the next
    action: Callable[[], Awaitable[object]]


def housekeeping_steps(services: Services, interval: float) -> list[Step]:
    settings = services.settings
    retention = timedelta(seconds=settings.completed_retention_seconds)
    executor = services.executor

    def singleton(step: Step) -> Step:
        return one_replica(step, services.store, holder=settings.node_id, clock=executor.clock)

    steps = [
        Step("resume expired runs", interval, executor.recover_expired),
        Step("start queued runs", interval, executor.start_queued),
        Step("start stranded buffered runs", interval, executor.start_stranded_buffered),
        Step("start due retries", interval, lambda: start_due_retries(services)),
        Step(
            "push the outbox",
            interval,
            lambda: services.pusher.push_all(
                concurrency=settings.reconcile_concurrency, backoff=True
            ),
        ),
        singleton(
            Step("purge completed jobs", interval, lambda: services.jobs.purge_completed(retention))
        ),
        singleton(Step("purge expired fire tokens", interval, services.fires.purge_expired_tokens)),
    ]
    if settings.reconcile_interval_seconds:

        async def periodic_reconcile() -> None:
            if services.startup.done:  # the startup reconcile covers the first round
                await services.reconciler.reconcile()

        every = settings.reconcile_interval_seconds
        steps.append(singleton(Step("periodic reconcile", every, periodic_reconcile)))
    return steps


async def start_due_retries(services: Services) -> int:
    """Queue the runs whose next attempt is due (any replica's, this one's since a restart
    too) and start what this replica has capacity for; returns how many were due."""
    due = await queue_due_retries(services.store, services.executor.clock())
    if due:
        await services.executor.start_queued()
    return due


def one_replica(step: Step, store: Store, *, holder: str, clock: Clock) -> Step:
    """`step`, run by one replica at a time: a round starts only under the step's lease row
    (`tx.leases`), which the holder renews at the start and the end of each of its rounds for
    a round and a half (at least 5 s more); other replicas skip their rounds meanwhile, and
    take over once a holder that died or stopped lets it lapse. Replicas' clocks are taken
    to agree within that margin."""
    hold = timedelta(seconds=step.every + max(step.every / 2, 5.0))

    async def hold_lease() -> bool:
        now = clock()
        async with store.transaction() as tx:
            return await tx.leases.acquire(step.name, holder, now, now + hold)

    async def guarded() -> object:
        if not await hold_lease():
            log.debug("maintenance: another replica runs this step", extra={"step": step.name})
            return None
        try:
            return await step.action()
        finally:
            await hold_lease()  # through this replica's next round

    return Step(step.name, step.every, guarded)


async def run_step(step: Step) -> None:
    """Run `step` every `step.every` seconds until cancelled; a failure is logged with the
    step's name and never ends the loop."""
    while True:
        await asyncio.sleep(step.every)
        try:
            await step.action()
        except StoreUnavailable as exc:
            log.warning(
                "maintenance: store unavailable", extra={"step": step.name, **failure_fields(exc)}
            )
        except Exception:  # keep the loop alive whatever one round hit
            log.exception("maintenance step failed", extra={"step": step.name})
