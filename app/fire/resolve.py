"""Which fire a delivery stands for, when its body does not say.

NAS is known to send `{job_id, fire_at}`, but nothing guarantees the `fire_at`: the upstream
agent never read it. A body without `fire_at` stands, in this order, for
1. the token's own `fire_at` claim (signed by NAS), provided it names the job's next fire or
   a fire already admitted (a re-delivery); any other time is a 401 `fire_at mismatch`;
2. the fire the token was already used for (the same delivery again is a duplicate; a token
   that names nothing about its fire counts only when it was used for this very job);
3. the job's current `next_run_at`, when it is due: no later than now + the early-fire window.
   Otherwise the delivery is answered 200 `ignored` with reason `not_due`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.auth import VerifiedFireToken
from app.clock import InvalidInstant, parse_instant
from app.domain.fires import fire_dedup_key
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
    return FireRequest(
        job_id=job_id,
        fire_at=fire_at,
        claimed_fire_at=claimed,
        token_id=token.token_id if token is not None else None,
        token_expires_at=token.binding_expires_at if token is not None else None,
        token_names_its_fire=token is None
        or any(name in token.claims for name in ("jti", "job_id", "fire_at")),
    )


def may_use_bound_token(
    request: FireRequest, fire_at: datetime, now: datetime, *, early: timedelta
) -> bool:
    """Whether a token already bound to another fire may still admit `fire_at`.

    A token that names its fire never may: that is a replay. One that names nothing is the same
    bytes for every fire NAS sends an agent within one second (RS256 signatures are
    deterministic), so a burst of jobs due at the same second shares it: it may admit a fire
    that is due (no later than now + the early-fire window, which absorbs the skew between
    NAS's clock and ours), as NAS itself would deliver it, and never one that is early."""
    return not request.token_names_its_fire and fire_at <= now + early


async def resolve_fire_at(
    tx: Tx, request: FireRequest, job: JobRecord | None, now: datetime, *, early: timedelta
) -> datetime | Unresolved:
    """The fire a body without `fire_at` stands for (see the module docstring)."""
    claimed = request.claimed_fire_at
    if claimed is not None:
        if job is None or job.state != JobState.SCHEDULED or job.next_run_at == claimed:
            return claimed  # answered for that very fire (ignored, or admitted)
        if await tx.fires.get_by_key(fire_dedup_key(job.id, claimed)) is not None:
            return claimed  # a re-delivery of a fire already admitted: a duplicate
        raise Unauthorized("invalid fire token: fire_at mismatch")
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
    if job.next_run_at is None or job.next_run_at > now + early:
        return Unresolved(IgnoredReason.NOT_DUE)
    return job.next_run_at


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
