"""The agent's background work: the startup reconcile and the maintenance loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from app.services import Services
from app.store import StoreUnavailable

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
    whose lease expired, start queued and stranded buffered runs, push the outbox, purge old
    completed jobs and fire tokens, and reconcile every `CHRONOS_RECONCILE_INTERVAL_SECONDS`.
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
    steps = [
        Step("resume expired runs", interval, executor.recover_expired),
        Step("start queued runs", interval, executor.start_queued),
        Step("start stranded buffered runs", interval, executor.start_stranded_buffered),
        Step(
            "push the outbox",
            interval,
            lambda: services.pusher.push_all(
                concurrency=settings.reconcile_concurrency, backoff=True
            ),
        ),
        Step("purge completed jobs", interval, lambda: services.jobs.purge_completed(retention)),
        Step("purge expired fire tokens", interval, services.fires.purge_expired_tokens),
    ]
    if settings.reconcile_interval_seconds:

        async def periodic_reconcile() -> None:
            if services.startup.done:  # the startup reconcile covers the first round
                await services.reconciler.reconcile()

        every = settings.reconcile_interval_seconds
        steps.append(Step("periodic reconcile", every, periodic_reconcile))
    return steps


async def run_step(step: Step) -> None:
    """Run `step` every `step.every` seconds until cancelled; a failure is logged with the
    step's name and never ends the loop."""
    while True:
        await asyncio.sleep(step.every)
        try:
            await step.action()
        except StoreUnavailable as exc:
            log.warning(
                "maintenance: store unavailable", extra={"step": step.name, "error": str(exc)}
            )
        except Exception:  # keep the loop alive whatever one round hit
            log.exception("maintenance step failed", extra={"step": step.name})
