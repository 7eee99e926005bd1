"""A fire's one transaction: decide it, record it, advance its job, queue (and claim) its arm.

The job row is locked first, then one statement reads what the decision needs besides it
(the fire already admitted under the key, the job's runs going on, a buffered fire); an
admission then writes the fire (no read-back: the record is built from what was written),
moves the job on and queues its next arm claimed for this replica's pusher, so the push after
commit goes straight to NAS. Nothing here talks to NAS: `FireService` acts on the `Decided`
after commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.domain.fires import fire_dedup_key, new_fire
from app.domain.jobs import advance_past, advanced_job
from app.domain.records import FireRecord, JobRecord, OutboxRecord
from app.domain.states import FireOutcome, IgnoredReason, JobState, NasOp, RunKind, RunStatus
from app.errors import Unauthorized
from app.fire.answers import FireAnswer, duplicate_answer, ignored_answer
from app.fire.policy import decide
from app.fire.resolve import FireRequest, Unresolved, may_use_bound_token, resolve_fire_at
from app.logs import log_context
from app.store import DuplicateFire, Tx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decided:
    """What a fire's transaction decided; the fire service acts on it after commit."""

    job_id: str
    answer: FireAnswer  # the answer, provided the arm holds when `must_arm`
    must_arm: bool = False  # a provision is pending: the 2xx holds only once NAS took it
    push: bool = False  # push the job's pending operation (best effort unless `must_arm`)
    run: FireRecord | None = None  # start this run after commit
    target: dict[str, Any] | None = None
    audit: bool = False  # after a 2xx, the arm audit checks that NAS kept the next arm
    claimed: OutboxRecord | None = None  # the arm, queued and claimed for this pusher
    next_run_at: datetime | None = None  # the job's next fire, once this one was admitted


@dataclass(frozen=True)
class Admission:
    """Who admits: this replica's node (run leases) and pusher (outbox claims)."""

    node_id: str
    lease: timedelta
    pusher_id: str
    claim: timedelta  # how long the arm's claim lasts (a few NAS call budgets)
    early: timedelta  # how early a fire without `fire_at` may stand for the next one


async def decide_in(tx: Tx, request: FireRequest, now: datetime, who: Admission) -> Decided:
    """Decide `request` in `tx` (see the module docstring). The job is locked before the
    fire's key is looked up, so a delivery racing another one for the same fire sees its fire
    and answers a duplicate."""
    job_id = request.job_id
    job = await tx.jobs.get(job_id, for_update=True)
    fire_at = request.fire_at
    if fire_at is None:
        resolved = await resolve_fire_at(tx, request, job, now, early=who.early)
        if isinstance(resolved, Unresolved):
            return await _unresolved(tx, job, job_id, resolved.reason, now)
        fire_at = resolved
    key = fire_dedup_key(job_id, fire_at)
    if request.token_id is not None and request.token_expires_at is not None:
        bound = await tx.fire_tokens.bind(request.token_id, key, request.token_expires_at)
        if bound != key and not may_use_bound_token(request, bound, fire_at, now):
            log.warning("fire token presented again for another fire")
            raise Unauthorized("invalid fire token: already used for another fire")
    with log_context(fire_at=fire_at.isoformat()):
        return await _decide_fire(tx, job, job_id, fire_at, key, now, who)


async def _decide_fire(
    tx: Tx,
    job: JobRecord | None,
    job_id: str,
    fire_at: datetime,
    key: str,
    now: datetime,
    who: Admission,
) -> Decided:
    view = await tx.fires.admission_view(job_id, key, now)
    if view.existing is not None:
        pending = await _ensure_armed(tx, job, now)
        return Decided(
            job_id,
            duplicate_answer(view.existing),
            must_arm=pending == NasOp.PROVISION,
            push=pending is not None,
            audit=job is not None,
        )
    if job is None:
        await tx.outbox.queue(job_id, NasOp.CANCEL, None, now)
        return Decided(
            job_id, ignored_answer(IgnoredReason.UNKNOWN_JOB, job_id, fire_at), push=True
        )
    if job.state != JobState.SCHEDULED:
        reason = IgnoredReason(job.state.value)  # paused or completed
        return Decided(job_id, ignored_answer(reason, job_id, fire_at))
    if job.next_run_at != fire_at:
        # NAS delivered an arm the job no longer has, so NAS may now hold none for it.
        pending = await _ensure_armed(tx, job, now)
        return Decided(
            job_id,
            ignored_answer(IgnoredReason.STALE, job_id, fire_at),
            push=pending is not None,
            audit=True,
        )
    decision = decide(job, fire_at, now, running=view.running, buffered=view.buffered)
    return await _admit(tx, job, fire_at, key, now, who, decision)


async def _unresolved(
    tx: Tx, job: JobRecord | None, job_id: str, reason: IgnoredReason, now: datetime
) -> Decided:
    """A fire without `fire_at` that stands for no fire of the job: ignored. When the job's
    next fire is not due yet, this is most likely a re-delivery of a fire already admitted
    (its answer lost): make sure, as a duplicate would, that the next arm is held."""
    if job is None:
        await tx.outbox.queue(job_id, NasOp.CANCEL, None, now)
        return Decided(job_id, ignored_answer(reason, job_id, None), push=True)
    if reason != IgnoredReason.NOT_DUE:
        return Decided(job_id, ignored_answer(reason, job_id, None))
    pending = await _ensure_armed(tx, job, now)
    return Decided(
        job_id,
        ignored_answer(reason, job_id, None),
        must_arm=pending == NasOp.PROVISION,
        push=pending is not None,
        audit=True,
    )


async def _admit(
    tx: Tx,
    job: JobRecord,
    fire_at: datetime,
    key: str,
    now: datetime,
    who: Admission,
    decision: Any,
) -> Decided:
    """Record the fire under its unique key, advance the job, queue its next arm."""
    runs_started = job.runs_started + (1 if decision.starts_a_run else 0)
    slots, nxt = advance_past(job, fire_at, now)
    if job.repeat is not None and runs_started >= job.repeat:
        nxt = None
    error = decision.reason if decision.status in (RunStatus.MISSED, RunStatus.SKIPPED) else None
    if slots > 1:
        late = f"{slots - 1} later slot(s) passed before it was delivered"
        error = f"{error}; {late}" if error else late
    fire = await tx.fires.insert(
        new_fire(
            job_id=job.id,
            fire_at=fire_at,
            dedup_key=key,
            kind=RunKind.SCHEDULED,
            status=decision.status,
            now=now,
            lease_owner=who.node_id,
            lease_expires_at=now + who.lease,
            error=error,
            slots=slots,
        )
    )
    values = advanced_job(next_run_at=nxt, runs_started=runs_started, now=now)
    if decision.status != RunStatus.BUFFERED:
        values.update(last_run_at=now, last_status=decision.status)
    if not await tx.jobs.advance(job.id, expected_next_run_at=fire_at, values=values):
        raise DuplicateFire(key)  # rolls back: another admission moved the job first
    # The job is done when nothing follows: no stray arm may outlive it (a no-op at NAS when
    # this very delivery consumed the arm).
    op, at = (NasOp.PROVISION, nxt) if nxt is not None else (NasOp.CANCEL, None)
    claimed = await tx.outbox.queue(
        job.id, op, at, now, claim_for=who.pusher_id, claim_until=now + who.claim
    )
    if fire.status in (RunStatus.MISSED, RunStatus.SKIPPED):  # recorded, not run: say why
        log.warning(
            f"fire {fire.status}", extra={"status": fire.status, "job": job.name, "reason": error}
        )
    else:
        log.info("fire admitted", extra={"status": fire.status})
    body = {"job_id": job.id, "fire_at": fire_at.isoformat()}
    if fire.status in (RunStatus.RUNNING, RunStatus.BUFFERED):
        running = fire.status == RunStatus.RUNNING
        status = FireOutcome.ACCEPTED if running else FireOutcome.BUFFERED
        answer = FireAnswer(202, {"status": status, **body})
    else:  # missed or skipped: recorded, not run; delivery ends here
        answer = FireAnswer(200, {"status": fire.status, "reason": fire.error, **body})
    return Decided(
        job.id,
        answer,
        must_arm=nxt is not None,
        push=True,
        run=fire if fire.status == RunStatus.RUNNING else None,
        target=job.target,
        audit=nxt is not None,
        claimed=claimed,
        next_run_at=nxt,
    )


async def _ensure_armed(tx: Tx, job: JobRecord | None, now: datetime) -> str | None:
    """Queue a re-arm of a scheduled job's current fire unless an operation is pending;
    returns the job's pending operation. Provision is an upsert: a no-op at NAS when the
    arm is there already."""
    pending = await tx.outbox.get(job.id) if job is not None else None
    if pending is not None:
        return pending.op
    if job is None or job.state != JobState.SCHEDULED or job.next_run_at is None:
        return None
    await tx.outbox.queue(job.id, NasOp.PROVISION, job.next_run_at, now)
    return NasOp.PROVISION
