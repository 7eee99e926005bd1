"""In-memory state of the NAS emulator: armed one-shots per agent and the delivery log
(`delivery_log.py`).

No I/O here. The registry is driven from one event loop: the API provisions and cancels arms,
the delivery scheduler takes due arms (`take_due`) and reports each attempt (`complete_attempt`).
Listeners registered with `add_listener` are called after every change that may move the
earliest due time, so the scheduler can wake up instead of polling.
"""

from __future__ import annotations

import heapq
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.clock import Clock, utc_now
from app.emulator.cursors import decode_cursor, encode_cursor
from app.emulator.delivery_log import DEFAULT_DELIVERY_LOG_SIZE, DeliveryLog
from app.emulator.records import (
    Arm,
    ArmPage,
    AttemptResult,
    DeliveryRecord,
    DeliveryTicket,
    Outcome,
    ProvisionRequest,
    ProvisionResult,
    RetryPolicy,
)
from app.emulator.variants import ConsumeMode

logger = logging.getLogger(__name__)


@dataclass(order=True)
class _DueEntry:
    due_at: datetime
    seq: int
    instance_id: str = field(compare=False)
    job_id: str = field(compare=False)


class ArmRegistry:
    """Arms keyed by (agent instance, job_id), a due-time heap, and the delivery log."""

    def __init__(
        self,
        retry_policy: RetryPolicy,
        *,
        clock: Clock = utc_now,
        delivery_log_size: int = DEFAULT_DELIVERY_LOG_SIZE,
    ) -> None:
        self._retry_policy = retry_policy
        self._clock = clock
        self._arms: dict[str, dict[str, Arm]] = {}
        self._due: list[_DueEntry] = []
        self._seq = 0
        self._log = DeliveryLog(delivery_log_size)
        self._listeners: list[Callable[[], None]] = []
        self._held = False  # deliveries held (emulator-only fault)
        self._held_until: datetime | None = None  # None while held: until released

    # -- agent-facing operations -------------------------------------------------------------

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.remove(listener)

    def provision(self, instance_id: str, request: ProvisionRequest) -> ProvisionResult:
        """Upsert the arm of (instance, job): the same fire instant is a no-op, another replaces.

        Replacing drops the previous arm with its pending (re-)deliveries; an attempt of the old
        arm already in flight completes, but its result no longer affects anything.
        """
        jobs = self._arms.setdefault(instance_id, {})
        current = jobs.get(request.job_id)
        if current is not None and current.fire_at_utc == request.fire_at_utc:
            return ProvisionResult(schedule_id=current.schedule_id, created=False)
        now = self._clock()
        arm = Arm(
            instance_id=instance_id,
            job_id=request.job_id,
            fire_at=request.fire_at,
            fire_at_utc=request.fire_at_utc,
            agent_callback_url=request.agent_callback_url,
            dedup_key=request.dedup_key,
            schedule_id=f"sch_{uuid.uuid4().hex}",
            created_at=now,
            next_attempt_at=request.fire_at_utc,
        )
        jobs[request.job_id] = arm
        self._push(arm)
        logger.info(
            "armed",
            extra={
                "job_id": arm.job_id,
                "agent": instance_id,
                "fire_at": arm.fire_at,
                "schedule_id": arm.schedule_id,
                "replaces": current.schedule_id if current else None,
            },
        )
        self._notify()
        return ProvisionResult(schedule_id=arm.schedule_id, created=True)

    def cancel(self, instance_id: str, job_id: str) -> bool:
        """Remove the arm of (instance, job) and its pending deliveries; False if there was none."""
        arm = self._arms.get(instance_id, {}).pop(job_id, None)
        if arm is None:
            return False
        logger.info(
            "cancelled",
            extra={"job_id": job_id, "agent": instance_id, "schedule_id": arm.schedule_id},
        )
        self._notify()
        return True

    def list_armed(self, instance_id: str, *, limit: int, cursor: str | None = None) -> ArmPage:
        """One page of the agent's arms, ordered by job_id.

        The cursor is the last job_id of the previous page (opaque to callers), so paging stays
        consistent while arms come and go.
        """
        after = decode_cursor(cursor) if cursor else None
        job_ids = sorted(self._arms.get(instance_id, {}))
        if after is not None:
            job_ids = [job_id for job_id in job_ids if job_id > after]
        page = job_ids[:limit]
        jobs = self._arms[instance_id] if page else {}
        next_cursor = encode_cursor(page[-1]) if len(job_ids) > limit else None
        return ArmPage(arms=[jobs[job_id] for job_id in page], next_cursor=next_cursor)

    # -- emulator-only inspection and control --------------------------------------------------

    def all_arms(self) -> list[Arm]:
        return [
            self._arms[instance_id][job_id]
            for instance_id in sorted(self._arms)
            for job_id in sorted(self._arms[instance_id])
        ]

    def clear(self) -> int:
        """Drop every arm of every agent, as if NAS lost them; returns how many there were."""
        count = sum(len(jobs) for jobs in self._arms.values())
        self._arms.clear()
        self._due.clear()
        logger.info("cleared all arms", extra={"count": count})
        self._notify()
        return count

    def deliveries(self, job_id: str | None = None) -> list[DeliveryRecord]:
        return self._log.records(job_id)

    def hold_deliveries(self, seconds: float | None = None) -> datetime | None:
        """Start no delivery attempt (first or re-delivery) for `seconds`, or until released;
        attempts in flight finish. Due arms wait and go out when the hold ends. Returns its end."""
        self._held = True
        self._held_until = None if seconds is None else self._clock() + timedelta(seconds=seconds)
        self._notify()
        return self._held_until

    def release_deliveries(self) -> None:
        if self._held:
            self._held, self._held_until = False, None
            self._notify()

    def deliveries_hold(self) -> tuple[bool, float | None]:
        """(held, seconds left): None left when not held or held until released."""
        now = self._clock()
        if not self._hold_in_force(now) or self._held_until is None:
            return self._held, None
        return True, (self._held_until - now).total_seconds()

    # -- scheduler-facing operations ---------------------------------------------------------

    def next_due_at(self) -> datetime | None:
        """When the earliest pending attempt is due, or None if nothing is pending; while
        deliveries are held, when the hold ends (None: when released, which notifies)."""
        if self._held:
            return self._held_until
        while self._due and not self._is_live(self._due[0]):
            heapq.heappop(self._due)
        return self._due[0].due_at if self._due else None

    def take_due(self, now: datetime) -> list[DeliveryTicket]:
        """Mark every arm due at `now` as delivering and return one ticket per attempt to make."""
        tickets: list[DeliveryTicket] = []
        if self._hold_in_force(now):
            return tickets
        while self._due and self._due[0].due_at <= now:
            entry = heapq.heappop(self._due)
            if not self._is_live(entry):
                continue
            arm = self._arms[entry.instance_id][entry.job_id]
            arm.next_attempt_at = None
            arm.timer_seq = None
            tickets.append(
                DeliveryTicket(
                    instance_id=arm.instance_id,
                    job_id=arm.job_id,
                    schedule_id=arm.schedule_id,
                    fire_at=arm.fire_at,
                    agent_callback_url=arm.agent_callback_url,
                    attempt=arm.attempts + 1,
                )
            )
        return tickets

    def is_current(self, ticket: DeliveryTicket) -> bool:
        """Whether the ticket's arm is still armed (not cancelled, replaced or cleared)."""
        return self._arm_of(ticket) is not None

    def release(self, ticket: DeliveryTicket) -> None:
        """Put back a ticket whose attempt was never made (shutdown): it is due again at once."""
        arm = self._arm_of(ticket)
        if arm is not None and arm.next_attempt_at is None:
            arm.next_attempt_at = self._clock()
            self._push(arm)
            self._notify()

    def complete_attempt(
        self,
        ticket: DeliveryTicket,
        result: AttemptResult,
        *,
        consume: ConsumeMode = ConsumeMode.SCHEDULE,
    ) -> DeliveryRecord:
        """Record an attempt and move its arm on: removed on 2xx (with `consume=job`, whatever
        arm the job has by then) or when attempts run out, re-scheduled with backoff otherwise."""
        arm = self._arm_of(ticket)
        next_retry_at: datetime | None = None
        if result.succeeded:
            outcome = Outcome.DELIVERED
            self._consume(ticket, consume)
        elif arm is None:
            outcome = Outcome.CANCELLED
        else:
            arm.attempts = ticket.attempt
            if ticket.attempt >= self._retry_policy.max_attempts:
                outcome = Outcome.ABANDONED
                del self._arms[arm.instance_id][arm.job_id]
            else:
                outcome = Outcome.RETRYING
                delay = self._retry_policy.delay_after(ticket.attempt, result.retry_after)
                next_retry_at = self._clock() + timedelta(seconds=delay)
                arm.next_attempt_at = next_retry_at
                self._push(arm)
        record = DeliveryRecord(
            instance_id=ticket.instance_id,
            job_id=ticket.job_id,
            fire_at=ticket.fire_at,
            schedule_id=ticket.schedule_id,
            agent_callback_url=ticket.agent_callback_url,
            attempt=ticket.attempt,
            status_code=result.status_code,
            response_body=result.response_body,
            error=result.error,
            delivered_at=result.started_at,
            next_retry_at=next_retry_at,
            outcome=outcome,
        )
        self._log.append(record)
        if next_retry_at is not None:
            self._notify()
        return record

    # -- internals ---------------------------------------------------------------------------

    def _consume(self, ticket: DeliveryTicket, consume: ConsumeMode) -> None:
        jobs = self._arms.get(ticket.instance_id, {})
        arm = jobs.get(ticket.job_id)
        if arm is None:
            return
        if arm.schedule_id == ticket.schedule_id:
            del jobs[ticket.job_id]
        elif consume is ConsumeMode.JOB:
            # A NAS that cleans up by job_id drops the arm made while the delivery waited.
            del jobs[ticket.job_id]
            logger.info(
                "removed the job's newer arm after the delivery of an older one (consume=job)",
                extra={
                    "job_id": ticket.job_id,
                    "agent": ticket.instance_id,
                    "schedule_id": arm.schedule_id,
                    "delivered_schedule_id": ticket.schedule_id,
                },
            )

    def _arm_of(self, ticket: DeliveryTicket) -> Arm | None:
        arm = self._arms.get(ticket.instance_id, {}).get(ticket.job_id)
        if arm is None or arm.schedule_id != ticket.schedule_id:
            return None
        return arm

    def _hold_in_force(self, now: datetime) -> bool:
        if self._held and self._held_until is not None and now >= self._held_until:
            self._held, self._held_until = False, None
        return self._held

    def _is_live(self, entry: _DueEntry) -> bool:
        arm = self._arms.get(entry.instance_id, {}).get(entry.job_id)
        return arm is not None and arm.timer_seq == entry.seq

    def _push(self, arm: Arm) -> None:
        assert arm.next_attempt_at is not None
        self._seq += 1
        arm.timer_seq = self._seq
        heapq.heappush(
            self._due, _DueEntry(arm.next_attempt_at, self._seq, arm.instance_id, arm.job_id)
        )
        # Replaced and cancelled arms leave dead entries behind; rebuild when they dominate.
        live = sum(len(jobs) for jobs in self._arms.values())
        if len(self._due) > 2 * live + 64:
            self._due = [entry for entry in self._due if self._is_live(entry)]
            heapq.heapify(self._due)

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()
