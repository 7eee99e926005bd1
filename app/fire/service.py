"""The fire path: admit a verified fire durably, exactly once, and keep the next fire armed.

Every 2xx is a promise to NAS: the fire is recorded, it never runs twice, and the job's
next one-shot is armed. When arming fails the answer is 503, so NAS re-delivers; the
re-delivery is a duplicate, which retries the arm until the chain is safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.auth import FireTokenVerifier, InvalidFireToken, SigningKeysUnavailable, bearer_token
from app.clock import Clock
from app.errors import InvalidRequest, ServiceUnavailable, Unauthorized
from app.fire.body import parse_fire_body
from app.fire.policy import decide
from app.jobs.timing import next_run_after
from app.nas.client import RetryBudget
from app.nas.outbox import OutboxPusher
from app.runner.executor import RunExecutor
from app.store import DuplicateFire, FireRecord, JobRecord, Store, fire_dedup_key, new_fire

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FireAnswer:
    status_code: int
    body: dict[str, Any]
    retry_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Admitted:
    fire: FireRecord
    job: JobRecord
    next_run_at: datetime | None


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
    ) -> None:
        self.store = store
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
            await self.verifier.verify(
                token, job_id=job_id, fire_at=fire_at, check_binding=body_error is None
            )
        except SigningKeysUnavailable as exc:
            raise ServiceUnavailable(
                "NAS signing keys are unavailable; retry later", retry_after=self.retry_after
            ) from exc
        except InvalidFireToken as exc:
            raise Unauthorized(f"invalid fire token: {exc.reason}") from exc
        if body_error is not None:
            raise body_error
        assert job_id is not None and fire_at is not None
        return await self.handle_fire(job_id, fire_at)

    async def handle_fire(self, job_id: str, fire_at: datetime) -> FireAnswer:
        """Decide a verified, validated fire; `StoreUnavailable` before anything is durable."""
        key = fire_dedup_key(job_id, fire_at)
        for _ in range(3):
            try:
                decision = await self._admit(job_id, fire_at, key)
            except DuplicateFire:
                continue  # a concurrent delivery won the unique key: answer as a duplicate
            if isinstance(decision, FireAnswer):
                reason = decision.body.get("reason")
                if reason == "unknown_job":
                    # Best effort now; the queued cancel is retried by the outbox otherwise.
                    await self.pusher.push_job(job_id, budget=self.arm_budget)
                elif reason == "stale" and not await self.pusher.push_job(
                    job_id, budget=self.arm_budget
                ):
                    return self._unavailable(
                        "stale fire; the job's current fire could not be armed at NAS:"
                        " re-deliver to retry"
                    )
                return decision
            if isinstance(decision, FireRecord):
                return await self._duplicate(decision)
            return await self._accepted(decision)
        async with self.store.transaction() as tx:
            existing = await tx.get_fire_by_key(key)
        assert existing is not None, "a duplicate key vanished"
        return await self._duplicate(existing)

    async def _admit(
        self, job_id: str, fire_at: datetime, key: str
    ) -> FireAnswer | FireRecord | _Admitted:
        async with self.store.transaction() as tx:
            existing = await tx.get_fire_by_key(key)
            if existing is not None:
                return existing
            job = await tx.get_job(job_id, for_update=True)
            if job is None:
                await tx.queue_nas_op(job_id, "cancel", None, self.clock())
                return self._ignored("unknown_job", job_id, fire_at)
            if job.state in ("paused", "completed"):
                return self._ignored(job.state, job_id, fire_at)
            if job.next_run_at is None or job.next_run_at != fire_at:
                if job.next_run_at is not None and await tx.get_nas_op(job_id) is None:
                    # NAS delivered an arm we no longer want, so it now holds none for this
                    # job: re-arm the right one (a no-op upsert at NAS if it is there).
                    await tx.queue_nas_op(job_id, "provision", job.next_run_at, self.clock())
                return self._ignored("stale", job_id, fire_at)

            now = self.clock()
            decision = decide(
                job,
                fire_at,
                now,
                running=await tx.running_count(job_id),
                buffered=await tx.buffered_fire(job_id) is not None,
            )
            runs_started = job.runs_started + (1 if decision.starts_a_run else 0)
            exhausted = job.repeat is not None and runs_started >= job.repeat
            # NAS owns the delivery clock: an early fire still advances from its own slot.
            nxt = None if exhausted else next_run_after(job, max(fire_at, now))
            fire = await tx.insert_fire(
                new_fire(
                    job_id=job_id,
                    fire_at=fire_at,
                    dedup_key=key,
                    kind="scheduled",
                    status=decision.status,
                    now=now,
                    lease_owner=self.node_id,
                    lease_expires_at=now + self.lease,
                    error=decision.reason if decision.status in ("missed", "skipped") else None,
                )
            )
            values: dict[str, Any] = {
                "next_run_at": nxt,
                "runs_started": runs_started,
                "state": "scheduled" if nxt is not None else "completed",
                "completed_at": None if nxt is not None else now,
                "updated_at": now,
            }
            if decision.status != "buffered":
                values.update(last_run_at=now, last_status=decision.status)
            if not await tx.advance_job(job_id, expected_next_run_at=fire_at, values=values):
                raise DuplicateFire(key)  # rolls back: another admission moved the job first
            if nxt is not None:
                await tx.queue_nas_op(job_id, "provision", nxt, now)
            else:
                # The job is done: make sure no stray arm outlives it (a no-op at NAS when
                # this very delivery consumed the arm).
                await tx.queue_nas_op(job_id, "cancel", None, now)
        return _Admitted(fire, job, nxt)

    async def _accepted(self, admitted: _Admitted) -> FireAnswer:
        fire, job = admitted.fire, admitted.job
        if fire.status == "running":
            self.executor.start(fire, job.target)
        log.info(
            "fire admitted",
            extra={"job_id": job.id, "fire_at": fire.fire_at.isoformat(), "status": fire.status},
        )
        armed = await self.pusher.push_job(job.id, budget=self.arm_budget)
        if admitted.next_run_at is not None and not armed:
            return self._unavailable(
                "the fire was admitted (it is never run twice), but the job's next fire could not"
                " be armed at NAS; re-deliver to retry the arm"
            )
        body = {"job_id": job.id, "fire_at": fire.fire_at.isoformat()}
        if fire.status == "running":
            return FireAnswer(202, {"status": "accepted", **body})
        if fire.status == "buffered":
            return FireAnswer(202, {"status": "buffered", **body})
        # missed or skipped: recorded, not run; delivery ends here.
        return FireAnswer(200, {"status": fire.status, "reason": fire.error, **body})

    async def _duplicate(self, fire: FireRecord) -> FireAnswer:
        if not await self.pusher.push_job(fire.job_id, budget=self.arm_budget):
            return self._unavailable(
                "duplicate fire; the job's next fire is still not armed at NAS: re-deliver to retry"
            )
        return FireAnswer(
            200,
            {
                "status": "duplicate",
                "job_id": fire.job_id,
                "fire_at": fire.fire_at.isoformat(),
                "run_status": fire.status,
            },
        )

    def _ignored(self, reason: str, job_id: str, fire_at: datetime) -> FireAnswer:
        log.info(
            "fire ignored",
            extra={"job_id": job_id, "fire_at": fire_at.isoformat(), "reason": reason},
        )
        return FireAnswer(
            200,
            {
                "status": "ignored",
                "reason": reason,
                "job_id": job_id,
                "fire_at": fire_at.isoformat(),
            },
        )

    def _unavailable(self, detail: str) -> FireAnswer:
        return FireAnswer(
            503,
            {"error": "arm_pending", "detail": detail},
            retry_after=self.retry_after,
        )
