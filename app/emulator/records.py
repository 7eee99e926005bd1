"""The emulator's values: arm states, retry policy, provision requests, arms, delivery
tickets, attempt results and the delivery log's records."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ArmState(StrEnum):
    SCHEDULED = "scheduled"  # waiting for fire_at
    DELIVERING = "delivering"  # an attempt is queued or in flight
    RETRYING = "retrying"  # an attempt failed; waiting for the next one


class Outcome(StrEnum):
    DELIVERED = "delivered"  # 2xx: the fire is done and the arm removed
    RETRYING = "retrying"  # non-2xx or transport error: another attempt is scheduled
    ABANDONED = "abandoned"  # the last allowed attempt failed: the arm is removed
    CANCELLED = "cancelled"  # failed, but the arm was cancelled or replaced meanwhile: no retry


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter between delivery attempts."""

    initial_seconds: float
    max_seconds: float
    max_attempts: int
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay_after(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        A `Retry-After` from the agent wins over the backoff, capped at `max_seconds`. Otherwise
        the backoff doubles from `initial_seconds` up to `max_seconds`, with "equal jitter": a
        random delay between half and all of it, so that retries of many fires spread out.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_seconds)
        exponent = min(max(attempt - 1, 0), 62)  # 2**62 * initial exceeds any sane maximum
        backoff = min(self.initial_seconds * 2.0**exponent, self.max_seconds)
        return backoff / 2 + self.rng.uniform(0, backoff / 2)


@dataclass(frozen=True)
class ProvisionRequest:
    """A validated provision call; `fire_at` is kept exactly as the agent sent it."""

    job_id: str
    fire_at: str
    fire_at_utc: datetime
    agent_callback_url: str
    dedup_key: str


@dataclass(frozen=True)
class ProvisionResult:
    schedule_id: str
    created: bool  # False: the same fire was armed already and nothing changed


@dataclass
class Arm:
    """One armed fire of one agent's job, and where its delivery stands."""

    instance_id: str
    job_id: str
    fire_at: str
    fire_at_utc: datetime
    agent_callback_url: str
    dedup_key: str
    schedule_id: str
    created_at: datetime
    next_attempt_at: datetime | None  # None while an attempt is queued or in flight
    attempts: int = 0
    timer_seq: int | None = None  # identifies the live entry of this arm in the due-heap

    @property
    def state(self) -> ArmState:
        if self.next_attempt_at is None:
            return ArmState.DELIVERING
        return ArmState.RETRYING if self.attempts else ArmState.SCHEDULED


@dataclass(frozen=True)
class DeliveryTicket:
    """One delivery attempt handed to the scheduler: a snapshot of the arm it was taken from."""

    instance_id: str
    job_id: str
    schedule_id: str
    fire_at: str
    agent_callback_url: str
    attempt: int


@dataclass(frozen=True)
class AttemptResult:
    """What one delivery attempt produced: an HTTP status or a transport error."""

    started_at: datetime
    status_code: int | None
    response_body: str | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class DeliveryRecord:
    """One entry of the delivery log."""

    instance_id: str
    job_id: str
    fire_at: str
    schedule_id: str
    agent_callback_url: str
    attempt: int
    status_code: int | None
    response_body: str | None
    error: str | None
    delivered_at: datetime
    next_retry_at: datetime | None
    outcome: Outcome


@dataclass(frozen=True)
class ArmPage:
    arms: list[Arm]
    next_cursor: str | None
