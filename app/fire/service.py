"""The fire path: admit a verified fire durably, exactly once, and keep the next fire armed.

Every 2xx is a promise to NAS: the fire is recorded, it is never admitted twice, and the
job's next one-shot is armed. When arming fails the answer is 503, so NAS re-delivers; the
re-delivery is a duplicate, which retries the arm until the chain is safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.auth import FireTokenVerifier, InvalidFireToken, SigningKeysUnavailable, bearer_token
from app.clock import Clock
from app.domain.fires import fire_dedup_key, new_fire
from app.domain.jobs import advance_past, advanced_job
from app.domain.records import FireRecord, JobRecord
from app.domain.states import FireOutcome, IgnoredReason, JobState, NasOp, RunKind, RunStatus
from app.errors import InvalidRequest, ServiceUnavailable, Unauthorized
from app.fire.body import parse_fire_body
from app.fire.policy import decide
from app.fire.resolve import (
    FireRequest,
    Unresolved,
    fire_request,
    may_use_bound_token,
    resolve_fire_at,
)
from app.logs import log_context
from app.nas.client import RetryBudget
from app.outbox import OutboxPusher
from app.outbox.audit import ArmAudit
from app.runner.executor import RunExecutor
from app.store import DuplicateFire, Store, Tx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FireAnswer:
    status_code: int
    body: dict[str, Any]
    retry_after: int | None = None


@dataclass(frozen=True)
class _Decided:
    """What a fire's transaction decided; `_settle` acts on it after commit."""

    job_id: str
    answer: FireAnswer  # the answer, provided the arm holds when `must_arm`
    must_arm: bool = False  # a provision is pending: the 2xx holds only once NAS took it
    push: bool = False  # push the job's pending operation (best effort unless `must_arm`)
    run: FireRecord | None = None  # start this run after commit
    target: dict[str, Any] | None = None
    audit: bool = False  # after a 2xx, the arm audit checks that NAS kept the next arm


class FireService:
    def __init__(
        self,
        store: Store,
        verifier: FireTokenVerifier,
        pusher: OutboxPusher,
        executor: RunExecutor,
        *,
        node_id: str,
        lease_seconds: int,
        arm_budget: RetryBudget,
        retry_after_seconds: int,
        clock: Clock,
        early_fire_seconds: int = 60,
        audit: ArmAudit | None = None,
    ) -> None:
        self.store = store
        self.early = timedelta(seconds=early_fire_seconds)
        self.audit = audit
        self.verifier = verifier
        self.pusher = pusher
        self.executor = executor
        self.node_id = node_id
        self.lease = timedelta(seconds=lease_seconds)
        self.arm_budget = arm_budget
        self.retry_after = retry_after_seconds
        self.clock = clock

    async def receive(self, authorization: str | None, raw_body: bytes) -> FireAnswer:
        """Verify the token, validate the raw body, then decide the fire.

        401 comes before 400: an unauthenticated caller learns nothing about the body.
        """
        token = bearer_token(authorization)
        if token is None:
            raise Unauthorized("missing bearer token")
        body_error: InvalidRequest | None = None
        job_id: str | None = None
        fire_at: datetime | None = None
        try:
            job_id, fire_at = parse_fire_body(raw_body)
        except InvalidRequest as exc:
            body_error = exc
        try:
            verified = await self.verifier.verify(
                token,
                job_id=job_id,
                fire_at=fire_at,
                check_binding=body_error is None and fire_at is not None,
            )
        except SigningKeysUnavailable as exc:
            raise ServiceUnavailable(
                "NAS signing keys are unavailable; retry later", retry_after=self.retry_after
            ) from exc
        except InvalidFireToken as exc:
            raise Unauthorized(f"invalid fire token: {exc.reason}") from exc
        if body_error is not None:
            raise body_error
        assert job_id is not None
        return await self.handle_fire(fire_request(job_id, fire_at, verified))

    async def handle_fire(self, request: FireRequest) -> FireAnswer:
        """Decide a verified, validated fire; `StoreUnavailable` before anything is durable."""
        fire_at = request.fire_at
        with log_context(job_id=request.job_id, fire_at=fire_at.isoformat() if fire_at else None):
            for _ in range(5):
                try:
                    decided = await self._decide(request)
                except DuplicateFire:
                    continue  # a concurrent delivery won: the next round answers a duplicate
                answer = await self._settle(decided)
                if self.audit is not None and answer.status_code < 300 and decided.audit:
                    self.audit.note(request.job_id)
                return answer
        raise RuntimeError(f"fire {request.job_id} kept conflicting with concurrent admissions")

    async def _decide(self, request: FireRequest) -> _Decided:
        """One transaction. The job is locked before the fire's key is looked up, so a delivery
        racing another one for the same fire sees its fire and answers a duplicate."""
        async with self.store.transaction() as tx:
            now = self.clock()
            job_id = request.job_id
            job = await tx.jobs.get(job_id, for_update=True)
            fire_at = request.fire_at
            if fire_at is None:
                resolved = await resolve_fire_at(tx, request, job, now, early=self.early)
                if isinstance(resolved, Unresolved):
                    return await self._unresolved(tx, job, job_id, resolved.reason, now)
                fire_at = resolved
            key = fire_dedup_key(job_id, fire_at)
            if request.token_id is not None and request.token_expires_at is not None:
                bound = await tx.fire_tokens.bind(request.token_id, key, request.token_expires_at)
                if bound != key and not may_use_bound_token(request, bound, fire_at, now):
                    log.warning("fire token presented again for another fire")
                    raise Unauthorized("invalid fire token: already used for another fire")
            with log_context(fire_at=fire_at.isoformat()):
                return await self._decide_fire(tx, job, job_id, fire_at, key, now)

    async def _decide_fire(
        self,
        tx: Tx,
        job: JobRecord | None,
        job_id: str,
        fire_at: datetime,
        key: str,
        now: datetime,
    ) -> _Decided:
        existing = await tx.fires.get_by_key(key)
        if existing is not None:
            pending = await self._ensure_armed(tx, job, now)
            return _Decided(
                job_id,
                self._duplicate_answer(existing),
                must_arm=pending == NasOp.PROVISION,
                push=pending is not None,
                audit=job is not None,
            )
        if job is None:
            await tx.outbox.queue(job_id, NasOp.CANCEL, None, now)
            return _Decided(
                job_id, self._ignored(IgnoredReason.UNKNOWN_JOB, job_id, fire_at), push=True
            )
        if job.state != JobState.SCHEDULED:
            reason = IgnoredReason(job.state.value)  # paused or completed
            return _Decided(job_id, self._ignored(reason, job_id, fire_at))
        if job.next_run_at != fire_at:
            # NAS delivered an arm the job no longer has, so NAS may now hold none for it.
            pending = await self._ensure_armed(tx, job, now)
            return _Decided(
                job_id,
                self._ignored(IgnoredReason.STALE, job_id, fire_at),
                push=pending is not None,
                audit=True,
            )
        return await self._admit(tx, job, fire_at, key, now)

    async def _unresolved(
        self, tx: Tx, job: JobRecord | None, job_id: str, reason: IgnoredReason, now: datetime
    ) -> _Decided:
        """A fire without `fire_at` that stands for no fire of the job: ignored. When the job's
        next fire is not due yet, this is most likely a re-delivery of a fire already admitted
        (its answer lost): make sure, as a duplicate would, that the next arm is held."""
        if job is None:
            await tx.outbox.queue(job_id, NasOp.CANCEL, None, now)
            return _Decided(job_id, self._ignored(reason, job_id, None), push=True)
        if reason != IgnoredReason.NOT_DUE:
            return _Decided(job_id, self._ignored(reason, job_id, None))
        pending = await self._ensure_armed(tx, job, now)
        return _Decided(
            job_id,
            self._ignored(reason, job_id, None),
            must_arm=pending == NasOp.PROVISION,
            push=pending is not None,
            audit=True,
        )

    async def _admit(
        self, tx: Tx, job: JobRecord, fire_at: datetime, key: str, now: datetime
    ) -> _Decided:
        """Record the fire under its unique key, advance the job, queue its next arm."""
        decision = decide(
            job,
            fire_at,
            now,
            running=await tx.fires.running_count(job.id, now),
            buffered=await tx.fires.buffered(job.id) is not None,
        )
        runs_started = job.runs_started + (1 if decision.starts_a_run else 0)
        slots, nxt = advance_past(job, fire_at, now)
        if job.repeat is not None and runs_started >= job.repeat:
            nxt = None
        error = (
            decision.reason if decision.status in (RunStatus.MISSED, RunStatus.SKIPPED) else None
        )
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
                lease_owner=self.node_id,
                lease_expires_at=now + self.lease,
                error=error,
                slots=slots,
            )
        )
        values = advanced_job(next_run_at=nxt, runs_started=runs_started, now=now)
        if decision.status != RunStatus.BUFFERED:
            values.update(last_run_at=now, last_status=decision.status)
        if not await tx.jobs.advance(job.id, expected_next_run_at=fire_at, values=values):
            raise DuplicateFire(key)  # rolls back: another admission moved the job first
        if nxt is not None:
            await tx.outbox.queue(job.id, NasOp.PROVISION, nxt, now)
        else:
            # The job is done: no stray arm may outlive it (a no-op at NAS when this very
            # delivery consumed the arm).
            await tx.outbox.queue(job.id, NasOp.CANCEL, None, now)
        log.info("fire admitted", extra={"status": fire.status})
        body = {"job_id": job.id, "fire_at": fire_at.isoformat()}
        if fire.status in (RunStatus.RUNNING, RunStatus.BUFFERED):
            running = fire.status == RunStatus.RUNNING
            status = FireOutcome.ACCEPTED if running else FireOutcome.BUFFERED
            answer = FireAnswer(202, {"status": status, **body})
        else:  # missed or skipped: recorded, not run; delivery ends here
            answer = FireAnswer(200, {"status": fire.status, "reason": fire.error, **body})
        return _Decided(
            job.id,
            answer,
            must_arm=nxt is not None,
            push=True,
            run=fire if fire.status == RunStatus.RUNNING else None,
            target=job.target,
            audit=nxt is not None,
        )

    async def _ensure_armed(self, tx: Tx, job: JobRecord | None, now: datetime) -> str | None:
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

    async def _settle(self, decided: _Decided) -> FireAnswer:
        """After commit: start the run, push the job's NAS operation within the fire budget.
        A 2xx promises the next fire is armed, so a provision NAS did not take is a 503."""
        if decided.run is not None and decided.target is not None:
            self.executor.start(decided.run, decided.target)
        if decided.push:
            armed = await self.pusher.push_job(
                decided.job_id, budget=self.arm_budget, within=self.arm_budget.max_seconds
            )
            if decided.must_arm and not armed:
                return self._unavailable(
                    "the fire is admitted and never admitted twice, but the job's next fire"
                    " could not be armed at NAS; re-deliver to retry the arm"
                )
        return decided.answer

    async def purge_expired_tokens(self) -> int:
        """Forget the bindings of fire tokens that no longer verify; returns how many."""
        async with self.store.transaction() as tx:
            return await tx.fire_tokens.purge_expired(self.clock())

    def _duplicate_answer(self, fire: FireRecord) -> FireAnswer:
        return FireAnswer(
            200,
            {
                "status": FireOutcome.DUPLICATE,
                "job_id": fire.job_id,
                "fire_at": fire.fire_at.isoformat(),
                "run_status": fire.status,
            },
        )

    def _ignored(self, reason: str, job_id: str, fire_at: datetime | None) -> FireAnswer:
        log.info("fire ignored", extra={"reason": reason})
        return FireAnswer(
            200,
            {
                "status": FireOutcome.IGNORED,
                "reason": reason,
                "job_id": job_id,
                "fire_at": fire_at.isoformat() if fire_at is not None else None,
            },
        )

    def _unavailable(self, detail: str) -> FireAnswer:
        return FireAnswer(
            503,
            {"error": "arm_pending", "detail": detail},
            retry_after=self.retry_after,
        )
