"""What the dashboard's pages show, computed from the records the services return: plain
values for the templates (which escape them), no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.domain.records import FireRecord, JobRecord, OutboxRecord
from app.domain.states import JobState
from app.jobs.redaction import redact_target
from app.schedule.words import describe_schedule


@dataclass(frozen=True)
class ArmState:
    """The job's standing at NAS: `armed`, `pending` (an operation not yet acknowledged),
    `parked` (NAS refused the operation; the next reconcile retries it) or `idle`."""

    label: str
    detail: str
    error: str | None


@dataclass(frozen=True)
class JobRow:
    id: str
    name: str
    schedule: str
    schedule_words: str
    timezone: str
    state: str
    next_local: str
    next_utc: str
    last_status: str
    last_run: str
    arm: ArmState


@dataclass(frozen=True)
class RunRow:
    key: str
    kind: str
    status: str
    attempt: int
    fire_at: str
    started_at: str
    lateness: str
    duration: str
    output: str
    error: str


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def utc_text(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def local_text(value: datetime | None, zone: str) -> str:
    if value is None:
        return "-"
    return value.astimezone(_zone(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def seconds_text(seconds: float | None) -> str:
    """`420 ms`, `4.20 s`, `12.3 s`, `4.1 min`, or `-`."""
    if seconds is None:
        return "-"
    if abs(seconds) < 1:
        return f"{seconds * 1000:.0f} ms"
    if abs(seconds) < 10:
        return f"{seconds:.2f} s"
    if abs(seconds) < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def age_text(seconds: float) -> str:
    """A rough age: `12 s`, `5 min`, `3 h`, `2 d`."""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def lateness_seconds(run: FireRecord) -> float | None:
    """How late the run started: `started_at - fire_at` (None if it never started)."""
    if run.started_at is None:
        return None
    return (run.started_at - run.fire_at).total_seconds()


def duration_seconds(run: FireRecord) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return (run.finished_at - run.started_at).total_seconds()


def arm_state(job: JobRecord, pending: OutboxRecord | None) -> ArmState:
    if pending is not None:
        what = f"{pending.op} {utc_text(pending.fire_at)}" if pending.fire_at else str(pending.op)
        tries = f", {pending.attempts} attempt(s)"
        if pending.parked:
            return ArmState("parked", f"{what}: refused by NAS{tries}", pending.last_error)
        return ArmState("pending", what + tries, pending.last_error)
    if job.state == JobState.SCHEDULED and job.next_run_at is not None:
        if job.armed_as_wanted:
            return ArmState("armed", f"for {utc_text(job.nas_armed_at)}", None)
        return ArmState("unconfirmed", "no NAS acknowledgement recorded yet", None)
    return ArmState("idle", "nothing armed", None)


def job_row(job: JobRecord, pending: OutboxRecord | None) -> JobRow:
    upcoming = job.next_run_at if job.state == JobState.SCHEDULED else None
    return JobRow(
        id=job.id,
        name=job.name,
        schedule=job.schedule,
        schedule_words=describe_schedule(job.schedule, job.timezone),
        timezone=job.timezone,
        state=str(job.state),
        next_local=local_text(upcoming, job.timezone),
        next_utc=utc_text(upcoming),
        last_status=str(job.last_status) if job.last_status else "-",
        last_run=utc_text(job.last_run_at),
        arm=arm_state(job, pending),
    )


def run_row(run: FireRecord) -> RunRow:
    return RunRow(
        key=run.dedup_key,
        kind=str(run.kind),
        status=str(run.status),
        attempt=run.attempt,
        fire_at=utc_text(run.fire_at),
        started_at=utc_text(run.started_at),
        lateness=seconds_text(lateness_seconds(run)),
        duration=seconds_text(duration_seconds(run)),
        output=run.output or "",
        error=run.error or "",
    )


def job_details(job: JobRecord) -> list[tuple[str, str]]:
    """Label and value of each of the job's settings, its target's secrets as `***`."""
    repeat = "unlimited" if job.repeat is None else str(job.repeat)
    grace = job.misfire_grace_seconds
    return [
        ("id", job.id),
        ("schedule", job.schedule),
        ("timezone", job.timezone),
        ("state", str(job.state)),
        ("target", json.dumps(redact_target(job.target), indent=2, sort_keys=True)),
        ("repeat", f"{job.runs_started} started of {repeat}"),
        ("misfire grace", "no limit" if grace is None else f"{grace} s"),
        ("catchup", str(job.catchup)),
        ("overlap", str(job.overlap)),
        ("retry", f"{job.retry.max_attempts} attempt(s), backoff {job.retry.backoff_seconds} s"),
        ("created", utc_text(job.created_at)),
        ("updated", utc_text(job.updated_at)),
        ("last run", utc_text(job.last_run_at)),
    ]
