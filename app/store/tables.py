"""Table definitions (SQLAlchemy Core). Migrations in `migrations/` create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        # SQLite keeps no offset: store naive UTC text that sorts and compares correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
        if not isinstance(parsed, datetime):
            raise TypeError(f"the store returned {type(parsed).__name__} for a datetime column")
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("schedule", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("target", JSON, nullable=False),
    Column("repeat", Integer, nullable=True),  # None: unlimited
    Column("runs_started", Integer, nullable=False, default=0),
    Column("state", String(16), nullable=False),  # scheduled | paused | completed
    Column("anchor_at", UTCDateTime, nullable=False),  # phase of intervals, base of delays
    Column("next_run_at", UTCDateTime, nullable=True),
    Column("last_run_at", UTCDateTime, nullable=True),
    Column("last_status", String(16), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Time semantics (migration 0002)
    Column("misfire_grace_seconds", Integer, nullable=True),  # None: unlimited
    Column("catchup", String(16), nullable=False, server_default="run_once"),  # run_once | skip
    Column(
        "overlap", String(16), nullable=False, server_default="skip"
    ),  # skip | allow | buffer_one
    Column("completed_at", UTCDateTime, nullable=True),
    # The fire NAS last acknowledged arming for this job (None: none, or cancelled), so "is the
    # next fire armed?" compares it with next_run_at (migration 0004).
    Column("nas_armed_at", UTCDateTime, nullable=True),
    # Retry policy of failed runs (migration 0007); 1 attempt: never retried.
    Column("retry_max_attempts", Integer, nullable=False, server_default="1"),
    Column("retry_backoff_seconds", Integer, nullable=False, server_default="10"),
    Column("retry_max_backoff_seconds", Integer, nullable=False, server_default="600"),
    Index("ix_jobs_state_completed_at", "state", "completed_at"),
    Index("uq_jobs_name", "name", unique=True),  # migration 0009: `chronos apply` keys by name
)

fires = Table(
    "fires",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(200), nullable=False),
    Column("fire_at", UTCDateTime, nullable=False),
    # "{job_id}:{fire_at}" for scheduled fires, "manual:{uuid}" for manual runs.
    Column("dedup_key", String(300), nullable=False),
    Column("kind", String(16), nullable=False),  # scheduled | manual | catchup
    # buffered | queued | running | retrying | succeeded | failed | timed_out | missed | skipped
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("fencing_token", Integer, nullable=False, default=0),
    Column("admitted_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("outcome", String(200), nullable=True),
    Column("output", Text, nullable=True),
    Column("error", Text, nullable=True),
    # How many schedule slots this record stands for (coalesced missed slots share one).
    Column("slots", Integer, nullable=False, server_default="1"),
    # Status `retrying`: when the next attempt is due; and how earlier attempts ended, a list
    # of {attempt, status, started_at, finished_at, outcome, error} (migration 0007).
    Column("retry_at", UTCDateTime, nullable=True),
    Column("previous_attempts", JSON, nullable=True),
    UniqueConstraint("dedup_key", name="uq_fires_dedup_key"),
    Index("ix_fires_job_id_fire_at", "job_id", "fire_at"),
    Index("ix_fires_status_lease", "status", "lease_expires_at"),
    Index("ix_fires_status_retry_at", "status", "retry_at"),
    Index("ix_fires_job_id_status", "job_id", "status"),  # migration 0008
)

# Each fire token presented, bound to the fire (`job_id:fire_at` key) it was first presented
# with, so it admits no other; kept until the token stops verifying (migration 0006).
fire_tokens = Table(
    "fire_tokens",
    metadata,
    Column("token_id", String(200), primary_key=True),  # `app.auth.fire_token_id`
    Column("dedup_key", String(300), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_fire_tokens_expires_at", "expires_at"),
)

# NAS operations not yet acknowledged: at most one per job, the latest wins (NAS upserts
# by job too). `op_id` is new for every operation queued, and never repeats, so an
# acknowledgement or a failure only ever touches the very operation that was pushed.
outbox = Table(
    "outbox",
    metadata,
    Column("job_id", String(200), primary_key=True),
    Column("op", String(16), nullable=False),  # provision | cancel
    Column("fire_at", UTCDateTime, nullable=True),
    Column("op_id", String(32), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # When NAS refused the operation for good (a 4xx other than 401/403); None: not parked,
    # retried with backoff (migration 0005).
    Column("parked_at", UTCDateTime, nullable=True),
    # The replica pushing the job's operations now, until when: one pusher per job across
    # replicas, so an older operation never lands at NAS after a newer one (migration 0007).
    Column("claimed_by", String(128), nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
)

# Housekeeping that one replica at a time does (the periodic reconcile, the retention
# purges): the holder of a step's lease runs its rounds, the others skip them until the lease
# lapses (its holder died or stopped). A row, not an advisory lock, so SQLite has it too
# (migration 0007).
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
