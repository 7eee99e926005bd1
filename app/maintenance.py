"""The agent's background work: the startup reconcile and the maintenance loop."""

from __future__ import annotations

import asyncio
import logging
import time
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
    """Resume runs whose lease expired, retry queued NAS operations, purge old completed
    jobs, and reconcile every `CHRONOS_RECONCILE_INTERVAL_SECONDS`."""
    retention = timedelta(seconds=services.settings.completed_retention_seconds)
    every = services.settings.reconcile_interval_seconds
    last_reconcile = time.monotonic()

    async def periodic_reconcile() -> None:
        nonlocal last_reconcile
        if every and services.startup.done and time.monotonic() - last_reconcile >= every:
            last_reconcile = time.monotonic()
            await services.reconciler.reconcile()

    steps = (
        # Runs first: resuming a dead replica's run must not wait behind a slow NAS.
        ("resume expired runs", services.executor.recover_expired),
        ("start stranded buffered runs", services.executor.start_stranded_buffered),
        (
            "push the outbox",
            lambda: services.pusher.push_all(
                concurrency=services.settings.reconcile_concurrency, backoff=True
            ),
        ),
        ("purge completed jobs", lambda: services.jobs.purge_completed(retention)),
        ("purge expired fire tokens", services.fires.purge_expired_tokens),
        ("periodic reconcile", periodic_reconcile),
    )
    while True:
        await asyncio.sleep(interval)
        for name, step in steps:
            try:
                await step()
            except StoreUnavailable as exc:
                log.warning(
                    "maintenance: store unavailable", extra={"step": name, "error": str(exc)}
                )
            except Exception:  # keep the loop alive whatever one step hit
                log.exception("maintenance step failed", extra={"step": name})
