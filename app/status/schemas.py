"""The answer of `GET /api/status`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from app.reconcile.progress import ReconcilePhase


class StoreKind(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class StoreStatus(BaseModel):
    kind: StoreKind
    reachable: bool
    revision: str | None = Field(description="the schema's migration revision")
    head: str | None = Field(description="the newest migration this version ships")
    behind: int | None = Field(description="migrations not applied (0: at head)")


class NasStatus(BaseModel):
    last_success_at: datetime | None = Field(description="the last NAS call answered (2xx)")
    last_error_at: datetime | None
    last_error: str | None = Field(description="why the last failed call failed, in short")
    credentials_ok: bool | None = Field(
        description="false after NAS refused the agent's token (401/403), true after an answer;"
        " null before any call"
    )
    list_supported: bool | None = Field(
        description="false when NAS answered `list` as unsupported; null before any list"
    )


class OutboxStatus(BaseModel):
    pending: int = Field(description="NAS operations not acknowledged yet")
    oldest_age_seconds: float | None = Field(description="age of the oldest pending operation")


class ReconcileProgressOut(BaseModel):
    phase: ReconcilePhase
    done: int
    total: int


class ReconcileStatus(BaseModel):
    running: bool
    progress: ReconcileProgressOut | None = Field(
        description="while a reconcile runs in this process: its phase and how far it is"
    )
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_report: dict[str, object] | None = Field(
        description="the report of the last reconcile in this process (as POST /api/reconcile)"
    )
    last_error: str | None = None


class RunsStatus(BaseModel):
    in_flight: int = Field(description="runs going on, every replica")
    in_flight_here: int = Field(description="runs this process executes now")
    queued: int = Field(description="runs waiting for a replica with capacity")
    retrying: int = Field(description="runs waiting for their next attempt")
    buffered: int = Field(description="fires buffered behind a run of their job")


class LeasesStatus(BaseModel):
    runs: int = Field(description="runs this node holds the lease of")
    named: list[str] = Field(description="housekeeping leases this node holds")


class ReadinessOut(BaseModel):
    ready: bool
    reason: str | None = None


class StatusOut(BaseModel):
    version: str
    node_id: str
    store: StoreStatus
    nas: NasStatus
    outbox: OutboxStatus
    reconcile: ReconcileStatus
    jobs: dict[str, int] = Field(description="jobs by state")
    runs: RunsStatus
    leases: LeasesStatus
    readiness: ReadinessOut
