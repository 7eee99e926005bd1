"""The dashboard's view of the outbox, NAS and reconciliation: the status service's answer
(`GET /api/status`) in words, and the NAS operations that failed, read through the store."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.records import OutboxRecord
from app.services import Services
from app.status.schemas import StatusOut
from app.status.service import agent_status
from app.ui.views import age_text, utc_text

FAILING_SHOWN = 20  # operations listed with their NAS error, newest failures first
_REPORT_COUNTS = ("armed", "cancelled", "missed", "errors")


@dataclass(frozen=True)
class PendingOp:
    job_id: str
    op: str
    fire_at: str
    attempts: int
    parked: bool
    error: str


@dataclass(frozen=True)
class Overview:
    pending: int
    parked: int
    oldest_age: str
    ready: bool
    readiness: str
    nas_error: str | None
    reconcile: str  # the last reconcile in words
    reconcile_ok: bool | None  # None: none finished in this process yet
    reconcile_detail: str | None
    failing: list[PendingOp]


def _pending_op(record: OutboxRecord) -> PendingOp:
    return PendingOp(
        job_id=record.job_id,
        op=str(record.op),
        fire_at=utc_text(record.fire_at),
        attempts=record.attempts,
        parked=record.parked,
        error=record.last_error or "",
    )


def _count(value: object) -> int:
    return len(value) if isinstance(value, list) else 0


def _reconcile_words(status: StatusOut) -> tuple[str, bool | None, str | None]:
    state = status.reconcile
    if state.running:
        progress = state.progress
        step = f" ({progress.phase}, {progress.done}/{progress.total})" if progress else ""
        return "running now" + step, None, None
    if state.last_error:
        return f"failed at {utc_text(state.last_finished_at)}", False, state.last_error
    report = state.last_report
    if report is None:
        return "none in this process yet", None, None
    counts = ", ".join(f"{_count(report.get(name))} {name}" for name in _REPORT_COUNTS)
    detail = f"{counts}; {report.get('in_sync', 0)} in sync, {report.get('pending', 0)} pending"
    if report.get("list_error"):
        detail += f"; NAS list failed: {report['list_error']}"
    return f"finished {utc_text(state.last_finished_at)}", bool(report.get("ok")), detail


def summarize(status: StatusOut, records: list[OutboxRecord]) -> Overview:
    failing = sorted(
        (r for r in records if r.last_error or r.parked), key=lambda r: r.updated_at, reverse=True
    )
    age = status.outbox.oldest_age_seconds
    reconcile, reconcile_ok, reconcile_detail = _reconcile_words(status)
    return Overview(
        pending=status.outbox.pending,
        parked=sum(1 for r in records if r.parked),
        oldest_age=age_text(age) if age is not None else "-",
        ready=status.readiness.ready,
        readiness="ready" if status.readiness.ready else (status.readiness.reason or "not ready"),
        nas_error=status.nas.last_error,
        reconcile=reconcile,
        reconcile_ok=reconcile_ok,
        reconcile_detail=reconcile_detail,
        failing=[_pending_op(r) for r in failing[:FAILING_SHOWN]],
    )


async def overview(services: Services) -> Overview:
    """The status service's answer, and every NAS operation not yet acknowledged (cancels of
    deleted jobs included) for the failing ones."""
    status = await agent_status(services)
    async with services.store.read() as tx:
        records = await tx.outbox.list_all()
    return summarize(status, records)
