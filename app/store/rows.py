"""Rows to domain records: the one place stored strings become enums again."""

from __future__ import annotations

from typing import Any

from app.domain.records import FireRecord, JobRecord, OutboxRecord
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
    )


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
    )
