"""The records the store returns: plain frozen values, no SQLAlchemy types past the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.states import Catchup, JobState, NasOp, Overlap, RunKind, RunStatus


@dataclass(frozen=True)
class JobRecord:
    id: str
    name: str
    schedule: str
    timezone: str
    target: dict[str, Any]
    repeat: int | None
    runs_started: int
    state: JobState
    anchor_at: datetime
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_status: RunStatus | None
    created_at: datetime
    updated_at: datetime
    misfire_grace_seconds: int | None
    catchup: Catchup
    overlap: Overlap
    completed_at: datetime | None
    nas_armed_at: datetime | None = None  # the fire NAS last acknowledged arming

    @property
    def armed_as_wanted(self) -> bool:
        """NAS holds what the job needs: its next fire, or nothing when it has none."""
        wanted = self.next_run_at if self.state == JobState.SCHEDULED else None
        return self.nas_armed_at == wanted


@dataclass(frozen=True)
class FireRecord:
    """One fire of a job (a run, when it runs), under its unique `dedup_key`."""

    id: int
    job_id: str
    fire_at: datetime
    dedup_key: str
    kind: RunKind
    status: RunStatus
    attempt: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    fencing_token: int
    admitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str | None
    output: str | None
    error: str | None
    slots: int


@dataclass(frozen=True)
class OutboxRecord:
    """The job's NAS operation not yet acknowledged."""

    job_id: str
    op: NasOp
    fire_at: datetime | None
    op_id: str  # new for every operation queued; never repeats
    attempts: int
    last_error: str | None  # NAS's answer (or the transport's) to the last failed push
    created_at: datetime
    updated_at: datetime
    # Set when NAS refused the operation itself (a 4xx other than 401/403): the maintenance
    # drain leaves it alone, the next reconcile (or an explicit push of the job) retries it.
    parked_at: datetime | None = None

    @property
    def parked(self) -> bool:
        return self.parked_at is not None
