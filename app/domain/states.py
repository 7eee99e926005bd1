"""Every state and policy of the service, as string enums: the store keeps their values and
the API schemas list them."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    SCHEDULED = "scheduled"
    PAUSED = "paused"
    COMPLETED = "completed"


class RunStatus(StrEnum):
    """A fire's (run's) status. `buffered`, `queued`, `running` and `retrying` are open; the
    others are final. `queued`: admitted to run, waiting in the store for a replica with
    capacity. `retrying`: an attempt failed and the next one waits for its `retry_at`."""

    BUFFERED = "buffered"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    MISSED = "missed"
    SKIPPED = "skipped"


class RunKind(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    CATCHUP = "catchup"


class Overlap(StrEnum):
    """What a fire does while the previous run of its job is still going."""

    SKIP = "skip"
    ALLOW = "allow"
    BUFFER_ONE = "buffer_one"


class Catchup(StrEnum):
    """What happens to fires that passed while nothing was armed at NAS."""

    RUN_ONCE = "run_once"
    SKIP = "skip"


class NasOp(StrEnum):
    """An operation queued for NAS in the outbox."""

    PROVISION = "provision"
    CANCEL = "cancel"


class FireOutcome(StrEnum):
    """The `status` of the answer to a fire call."""

    ACCEPTED = "accepted"
    BUFFERED = "buffered"
    IGNORED = "ignored"
    DUPLICATE = "duplicate"
    MISSED = "missed"
    SKIPPED = "skipped"


class IgnoredReason(StrEnum):
    UNKNOWN_JOB = "unknown_job"
    PAUSED = "paused"
    COMPLETED = "completed"
    STALE = "stale"
    NOT_DUE = "not_due"
