"""The fire path: admit a verified fire durably, exactly once, and keep the next fire armed.

Every 2xx is a promise to NAS: the fire is recorded, it is never admitted twice, and the
job's next one-shot is armed. When arming fails the answer is 503, so NAS re-delivers; the
re-delivery is a duplicate, which retries the arm until the chain is safe.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import datetime, timedelta

from app.auth import FireTokenVerifier, InvalidFireToken, SigningKeysUnavailable, bearer_token
from app.clock import Clock
from app.domain.fires import fire_dedup_key
from app.errors import InvalidRequest, ServiceUnavailable, Unauthorized
from app.fire.admission import Admission, Decided, decide_in
from app.fire.answers import FireAnswer, duplicate_answer
from app.fire.body import parse_fire_body
from app.fire.resolve import FireRequest, fire_request
from app.logs import log_context
from app.nas.client import RetryBudget
from app.outbox import OutboxPusher
from app.outbox.audit import ArmAudit
from app.runner.executor import RunExecutor
from app.store import DuplicateFire, Store

log = logging.getLogger(__name__)

NEXT_FIRES_REMEMBERED = 100_000  # jobs whose next fire this process remembers (LRU)

__all__ = ["FireAnswer", "FireService"]


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
        self.audit = audit
        self.verifier = verifier
        self.pusher = pusher
        self.executor = executor
        self.node_id = node_id
        self.arm_budget = arm_budget
        self.retry_after = retry_after_seconds
        self.clock = clock
        self._next_fires: OrderedDict[str, datetime] = OrderedDict()
        self.admission = Admission(
            node_id=node_id,
            lease=timedelta(seconds=lease_seconds),
            pusher_id=pusher.node_id,
            claim=pusher.claim_lease(arm_budget),
            early=timedelta(seconds=early_fire_seconds),
        )

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
            answer = await self._settled_duplicate(request)
            if answer is not None:
                return answer
            for _ in range(5):
                try:
                    async with self.store.transaction() as tx:
                        decided = await decide_in(tx, request, self.clock(), self.admission)
                except DuplicateFire:
                    continue  # a concurrent delivery won: the next round answers a duplicate
                if decided.next_run_at is not None:
                    self._remember_next(decided.job_id, decided.next_run_at)
                answer = await self._settle(decided)
                if self.audit is not None and answer.status_code < 300 and decided.audit:
                    self.audit.note(request.job_id)
                return answer
        raise RuntimeError(f"fire {request.job_id} kept conflicting with concurrent admissions")

    async def _settled_duplicate(self, request: FireRequest) -> FireAnswer | None:
        """A re-delivery of a fire already admitted, whose job's arm is known to be held, is
        answered from one read, with no lock and no write. Anything else (an arm pending, a
        token not bound to this fire yet) takes the transaction."""
        if request.fire_at is None or self._next_fires.get(request.job_id) == request.fire_at:
            return None  # the job's next fire as this process last admitted it: most likely new
        key = fire_dedup_key(request.job_id, request.fire_at)
        async with self.store.read() as tx:
            seen = await tx.fires.duplicate_view(key, request.token_id)
        if seen is None or not seen.settled:
            return None
        if request.token_id is not None and seen.bound_key != key:
            return None
        if self.audit is not None:
            self.audit.note(request.job_id)
        return duplicate_answer(seen.fire)

    async def _settle(self, decided: Decided) -> FireAnswer:
        """After commit: start the run, push the job's NAS operation within the fire budget.
        A 2xx promises the next fire is armed, so a provision NAS did not take is a 503."""
        if decided.run is not None and decided.target is not None:
            self.executor.start(decided.run, decided.target)
        if decided.push:
            armed = await self.pusher.push_job(
                decided.job_id,
                budget=self.arm_budget,
                within=self.arm_budget.max_seconds,
                claimed=decided.claimed,
            )
            if decided.must_arm and not armed:
                return self._unavailable(
                    "the fire is admitted and never admitted twice, but the job's next fire"
                    " could not be armed at NAS; re-deliver to retry the arm"
                )
        return decided.answer

    def _remember_next(self, job_id: str, next_run_at: datetime) -> None:
        """Remember the job's next fire as admitted here: a delivery of that very fire skips
        the duplicate read (a hint only; the admission's transaction decides)."""
        self._next_fires[job_id] = next_run_at
        self._next_fires.move_to_end(job_id)
        if len(self._next_fires) > NEXT_FIRES_REMEMBERED:
            self._next_fires.popitem(last=False)

    async def purge_expired_tokens(self) -> int:
        """Forget the bindings of fire tokens that no longer verify; returns how many."""
        async with self.store.transaction() as tx:
            return await tx.fire_tokens.purge_expired(self.clock())

    def _unavailable(self, detail: str) -> FireAnswer:
        return FireAnswer(
            503,
            {"error": "arm_pending", "detail": detail},
            retry_after=self.retry_after,
        )
