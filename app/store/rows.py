"""Rows to domain records: the one place stored strings become enums again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.domain.records import AttemptRecord, FireRecord, JobRecord, OutboxRecord, RetryPolicy
from app.domain.states import Catchup, JobState, NasOp, Overlap, RunKind, RunStatus


def job_from_row(row: Any) -> JobRecord:
    m = row._mapping
    last_status = m["last_status"]
    return JobRecord(
        id=m["id"],
        name=m["name"],
        schedule=m["schedule"],
        timezone=m["timezone"],
        target=m["target"],
        repeat=m["repeat"],
        runs_started=m["runs_started"],
        state=JobState(m["state"]),
        anchor_at=m["anchor_at"],
        next_run_at=m["next_run_at"],
        last_run_at=m["last_run_at"],
        last_status=RunStatus(last_status) if last_status is not None else None,
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        misfire_grace_seconds=m["misfire_grace_seconds"],
        catchup=Catchup(m["catchup"]),
        overlap=Overlap(m["overlap"]),
        completed_at=m["completed_at"],
        nas_armed_at=m["nas_armed_at"],
        retry=RetryPolicy(
            max_attempts=m["retry_max_attempts"],
            backoff_seconds=m["retry_backoff_seconds"],
            max_backoff_seconds=m["retry_max_backoff_seconds"],
        ),
    )


def fire_from_row(row: Any) -> FireRecord:
    m = row._mapping
    return FireRecord(
        id=m["id"],
        job_id=m["job_id"],
        fire_at=m["fire_at"],
        dedup_key=m["dedup_key"],
        kind=RunKind(m["kind"]),
        status=RunStatus(m["status"]),
        attempt=m["attempt"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        fencing_token=m["fencing_token"],
        admitted_at=m["admitted_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        outcome=m["outcome"],
        output=m["output"],
        error=m["error"],
        slots=m["slots"],
        retry_at=m["retry_at"],
        previous_attempts=tuple(attempt_from_json(a) for a in m["previous_attempts"] or ()),
    )


def fire_from_values(fire_id: int, values: dict[str, Any]) -> FireRecord:
    """The record of a fire just inserted with `values` (see `new_fire`), without reading it
    back: columns not given take their defaults."""
    return FireRecord(
        id=fire_id,
        job_id=values["job_id"],
        fire_at=_utc(values["fire_at"]),
        dedup_key=values["dedup_key"],
        kind=RunKind(values["kind"]),
        status=RunStatus(values["status"]),
        attempt=values.get("attempt", 1),
        lease_owner=values.get("lease_owner"),
        lease_expires_at=_utc(values.get("lease_expires_at")),
        fencing_token=values.get("fencing_token", 0),
        admitted_at=_utc(values["admitted_at"]),
        started_at=_utc(values.get("started_at")),
        finished_at=_utc(values.get("finished_at")),
        outcome=values.get("outcome"),
        output=values.get("output"),
        error=values.get("error"),
        slots=values.get("slots", 1),
        retry_at=_utc(values.get("retry_at")),
        previous_attempts=tuple(
            attempt_from_json(a) for a in values.get("previous_attempts") or ()
        ),
    )


def _utc(value: Any) -> Any:
    """A datetime as the store reads it back: in UTC."""
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def attempt_from_json(data: dict[str, Any]) -> AttemptRecord:
    def when(key: str) -> datetime | None:
        return datetime.fromisoformat(data[key]) if data.get(key) else None

    finished_at = when("finished_at")
    assert finished_at is not None
    return AttemptRecord(
        attempt=int(data["attempt"]),
        status=RunStatus(data["status"]),
        started_at=when("started_at"),
        finished_at=finished_at,
        outcome=data.get("outcome"),
        error=data.get("error"),
    )


def attempt_to_json(attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "status": attempt.status.value,
        "started_at": attempt.started_at.isoformat() if attempt.started_at else None,
        "finished_at": attempt.finished_at.isoformat(),
        "outcome": attempt.outcome,
        "error": attempt.error,
    }


def outbox_from_row(row: Any) -> OutboxRecord:
    m = row._mapping
    return OutboxRecord(
        job_id=m["job_id"],
        op=NasOp(m["op"]),
        fire_at=m["fire_at"],
        op_id=m["op_id"],
        attempts=m["attempts"],
        last_error=m["last_error"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        parked_at=m["parked_at"],
        claimed_by=m["claimed_by"],
        claimed_until=m["claimed_until"],
    )
