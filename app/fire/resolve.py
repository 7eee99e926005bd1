"""Which fire a delivery stands for, when its body does not say.

NAS is known to send `{job_id, fire_at}`, but nothing guarantees the `fire_at`: the upstream
agent never read it. A body without `fire_at` stands, in this order, for
1. the token's own `fire_at` claim (signed by NAS); the fire table then applies as if the body
   had carried it (a past time of the job is `stale`, an admitted one a duplicate);
2. the fire the token was already used for (the same delivery again is a duplicate; a token
   that names nothing about its fire counts only when it was used for this very job);
3. the job's current `next_run_at`, when it is due: no later than now + the early-fire window
   (and, before its time, past the midpoint since the job's last admission, so that a
   re-delivery of the fire just admitted never runs a short-interval job's next slot early).
   Otherwise the delivery is answered 200 `ignored` with reason `not_due`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.auth import VerifiedFireToken
from app.clock import InvalidInstant, parse_instant
from app.domain.records import JobRecord
from app.domain.states import IgnoredReason, JobState
from app.errors import Unauthorized
from app.store import Tx


@dataclass(frozen=True)
class FireRequest:
    """A verified delivery: the body's job and time (None when the body has none), and what
    the token says about the fire it may admit."""

    job_id: str
    fire_at: datetime | None
    claimed_fire_at: datetime | None = None
    token_id: str | None = None
    token_expires_at: datetime | None = None
    # The token names its fire (a `jti`, or a `job_id`/`fire_at` claim). One that names nothing
    # may be byte for byte the token of another fire NAS sent in the same second.
    token_names_its_fire: bool = True


@dataclass(frozen=True)
class Unresolved:
    """The body stands for no fire of the job; the delivery is ignored for `reason`."""

    reason: IgnoredReason


def fire_request(
    job_id: str, fire_at: datetime | None, token: VerifiedFireToken | None
) -> FireRequest:
    """The request a verified token and a parsed body make. With a body `fire_at`, the token's
    claims were checked against it by the verifier; without one, the `job_id` claim must still
    name the body's job and a `fire_at` claim must be an instant."""
    claimed: datetime | None = None
    if token is not None and fire_at is None:
        claims = token.claims
        if "job_id" in claims and claims["job_id"] != job_id:
            raise Unauthorized("invalid fire token: job_id mismatch")
        if "fire_at" in claims:
            claimed = _claimed_instant(claims["fire_at"])
    # A token whose own claims name its job and time can only ever admit that fire (the
    # verifier holds it to them): it needs no binding row, and a re-delivery with it is
    # answered without a write.
    named = token is not None and "job_id" in token.claims and "fire_at" in token.claims
    needs_binding = token is not None and not named
    return FireRequest(
        job_id=job_id,
        fire_at=fire_at,
        claimed_fire_at=claimed,
        token_id=token.token_id if token is not None and needs_binding else None,
        token_expires_at=token.binding_expires_at if token is not None and needs_binding else None,
        token_names_its_fire=token is None
        or any(name in token.claims for name in ("jti", "job_id", "fire_at")),
    )


# How far ahead of our clock a fire may be, to be admitted with a token already used for another
# job's fire (the skew between NAS's clock and ours, when a burst shares one token).
BURST_SKEW = timedelta(seconds=5)


def may_use_bound_token(
    request: FireRequest, bound_key: str, fire_at: datetime, now: datetime
) -> bool:
    """Whether a token already bound to another fire (`bound_key`) may still admit `fire_at`.

    A token that names its fire (a `jti`, a `job_id` or `fire_at` claim) never may: that is a
    replay. One that names nothing is the same bytes for every fire NAS signs for this agent
    within one second (RS256 signatures are deterministic), so a burst of jobs due at the same
    second shares it: it may admit another job's fire that is due (no later than now +
    `BURST_SKEW`), which NAS would deliver at that very time anyway. It never admits another
    time of the same job, nor a fire that is early."""
    if request.token_names_its_fire or bound_key.startswith(f"{request.job_id}:"):
        return False
    return fire_at <= now + BURST_SKEW


async def resolve_fire_at(
    tx: Tx, request: FireRequest, job: JobRecord | None, now: datetime, *, early: timedelta
) -> datetime | Unresolved:
    """The fire a body without `fire_at` stands for (see the module docstring)."""
    if request.claimed_fire_at is not None:
        return request.claimed_fire_at  # signed by NAS: the fire table decides from here
    if request.token_id is not None:
        bound = await tx.fire_tokens.bound_key(request.token_id)
        if bound is not None and (
            request.token_names_its_fire or bound.startswith(f"{request.job_id}:")
        ):
            return _fire_at_of_key(bound, request.job_id)
    if job is None:
        return Unresolved(IgnoredReason.UNKNOWN_JOB)
    if job.state != JobState.SCHEDULED:
        return Unresolved(IgnoredReason(job.state.value))
    if job.next_run_at is None or not _due(job, job.next_run_at, now, early):
        return Unresolved(IgnoredReason.NOT_DUE)
    return job.next_run_at


def _due(job: JobRecord, next_run_at: datetime, now: datetime, early: timedelta) -> bool:
    """Whether a delivery without `fire_at` may stand for `next_run_at`.

    Due means no later than now + the early window. Before its time, it must also come past
    the midpoint between the job's last admission and `next_run_at`: a re-delivery of the fire
    just admitted (its answer lost, or a 503 asking to retry the arm) comes right after that
    admission, and must not run the next slot of a short-interval job early."""
    if next_run_at <= now:
        return True
    if next_run_at > now + early:
        return False
    last = job.last_run_at
    return last is None or now - last >= (next_run_at - last) / 2


def _claimed_instant(value: Any) -> datetime:
    if not isinstance(value, str):
        raise Unauthorized("invalid fire token: invalid fire_at claim")
    try:
        return parse_instant(value)
    except InvalidInstant as exc:
        raise Unauthorized("invalid fire token: invalid fire_at claim") from exc


def _fire_at_of_key(key: str, job_id: str) -> datetime:
    """The fire time of a dedup key bound to a token; 401 when it is another job's fire."""
    prefix = f"{job_id}:"
    if not key.startswith(prefix):
        raise Unauthorized("invalid fire token: already used for another fire")
    try:
        return parse_instant(key[len(prefix) :])
    except InvalidInstant as exc:  # a job whose id starts with this one's and a colon
        raise Unauthorized("invalid fire token: already used for another fire") from exc
