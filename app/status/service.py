"""`GET /api/status`: the agent's state gathered from the services, the store and NAS health."""

from __future__ import annotations

import logging
from datetime import datetime

from app.domain.states import JobState, RunStatus
from app.nas.health import NasHealth
from app.reconcile.progress import ReconcilePhase, ReconcileState
from app.services import Services
from app.status.readiness import readiness
from app.status.schemas import (
    LeasesStatus,
    NasStatus,
    OutboxStatus,
    ReadinessOut,
    ReconcileProgressOut,
    ReconcileStatus,
    RunsStatus,
    StatusOut,
    StoreKind,
    StoreStatus,
)
from app.store import StoreUnavailable
from app.store.overview import StoreOverview, read_overview
from app.version import VERSION

log = logging.getLogger(__name__)


async def agent_status(services: Services) -> StatusOut:
    """Everything `GET /api/status` answers. An unreachable store is reported, not raised:
    its counts are then zero and `store.reachable` false."""
    now = services.executor.clock()
    store_status, overview = await _store_part(services, now)
    ready = await readiness(services.store, services.startup, services.drain)
    by_status = overview.runs_by_status
    return StatusOut(
        version=VERSION,
        node_id=services.settings.node_id,
        store=store_status,
        nas=nas_status(services.nas.health),
        outbox=OutboxStatus(
            pending=overview.outbox_pending,
            oldest_age_seconds=_age(overview.outbox_oldest_at, now),
        ),
        reconcile=reconcile_status(services.reconciler.state, overview.outbox_pending),
        jobs={str(state): overview.jobs_by_state.get(str(state), 0) for state in JobState},
        runs=RunsStatus(
            in_flight=by_status.get(RunStatus.RUNNING, 0),
            in_flight_here=services.executor.active,
            queued=by_status.get(RunStatus.QUEUED, 0),
            retrying=by_status.get(RunStatus.RETRYING, 0),
            buffered=by_status.get(RunStatus.BUFFERED, 0),
        ),
        leases=LeasesStatus(runs=overview.run_leases_held, named=overview.leases_held),
        readiness=ReadinessOut(ready=ready.ready, reason=ready.reason),
    )


async def _store_part(services: Services, now: datetime) -> tuple[StoreStatus, StoreOverview]:
    store = services.store
    kind = StoreKind.POSTGRESQL if store.dialect == "postgresql" else StoreKind.SQLITE
    try:
        async with store.read() as tx:
            overview = await read_overview(tx, node_id=services.settings.node_id, now=now)
        migrations = await store.migration_status()
    except StoreUnavailable as exc:
        log.warning("status: store unavailable", extra={"error": str(exc)})
        unknown = StoreStatus(kind=kind, reachable=False, revision=None, head=None, behind=None)
        return unknown, StoreOverview()
    status = StoreStatus(
        kind=kind,
        reachable=True,
        revision=migrations.current,
        head=migrations.head,
        behind=migrations.behind,
    )
    return status, overview


def nas_status(health: NasHealth) -> NasStatus:
    return NasStatus(
        last_success_at=health.last_success_at,
        last_error_at=health.last_error_at,
        last_error=health.last_error,
        credentials_ok=health.credentials_ok,
        list_supported=health.list_supported,
    )


def reconcile_status(state: ReconcileState, outbox_pending: int) -> ReconcileStatus:
    """The reconciler's state; while it pushes, `done` is the operations pushed so far (those
    pending at the start less those pending now)."""
    progress = None
    if state.running:
        done, total = state.progress.done, state.progress.total
        if state.progress.phase is ReconcilePhase.PUSHING:
            done = max(0, total - outbox_pending)
        progress = ReconcileProgressOut(
            phase=state.progress.phase, done=min(done, total), total=total
        )
    return ReconcileStatus(
        running=state.running,
        progress=progress,
        last_started_at=state.last_started_at,
        last_finished_at=state.last_finished_at,
        last_report=state.last_report,
        last_error=state.last_error,
    )


def _age(then: datetime | None, now: datetime) -> float | None:
    return None if then is None else round(max(0.0, (now - then).total_seconds()), 3)
