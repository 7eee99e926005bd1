"""The records the store returns: plain frozen values, no SQLAlchemy types past the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.domain.states import Catchup, JobState, NasOp, Overlap, RunKind, RunStatus


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed run of the job is tried again: up to `max_attempts` attempts in
    all (1: never retried), the n-th retry after `backoff_seconds * 2^(n-1)` seconds at most
    `max_backoff_seconds`, jittered down to half of that."""

    max_attempts: int = 1
    backoff_seconds: int = 10
    max_backoff_seconds: int = 600

    def retries_after(self, attempt: int) -> bool:
        """A failed `attempt` (1-based) is tried again."""
        return attempt < self.max_attempts

    def delay(self, attempt: int, jitter: float) -> timedelta:
        """The wait before the attempt after a failed `attempt`; `jitter` in [0, 1] picks it
        between half the exponential delay and all of it."""
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** min(attempt - 1, 30))
        return timedelta(seconds=ceiling * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0)))


@dataclass(frozen=True)
class AttemptRecord:
    """How an earlier attempt of a run ended, kept when the run was retried."""

    attempt: int
    status: RunStatus  # failed or timed_out
    started_at: datetime | None
    finished_at: datetime
    outcome: str | None
    error: str | None


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
    retry: RetryPolicy = RetryPolicy()

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
    retry_at: datetime | None = None  # status `retrying`: when the next attempt is due
    previous_attempts: tuple[AttemptRecord, ...] = ()  # earlier attempts, oldest first


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
    # The replica pushing the job's operations, until when (its claim lapses then).
    claimed_by: str | None = None
    claimed_until: datetime | None = None

    @property
    def parked(self) -> bool:
        return self.parked_at is not None

    def claimed_by_other(self, owner: str, now: datetime) -> bool:
        """Another pusher holds a claim on the job's operations that has not lapsed."""
        return (
            self.claimed_by is not None
            and self.claimed_by != owner
            and self.claimed_until is not None
            and self.claimed_until >= now
        )
