"""Writes a run cannot do without: its end, and its return to the queue. Each is retried with
backoff for as long as the process lives, because a run whose end is not recorded would be
taken over and run again once its lease lapses."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from app.domain.records import AttemptRecord, FireRecord, RetryPolicy
from app.domain.states import RunStatus
from app.logs import failure_fields
from app.runner.targets import RunResult
from app.store import Store, StoreUnavailable, Tx

log = logging.getLogger("app.runner.executor")

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPace:
    """How a write that must land is retried: backoff from `initial` doubling up to `maximum`
    seconds (jittered), a log line when the wait starts and every `warn_every` seconds of it."""

    initial: float = 0.25
    maximum: float = 5.0
    warn_every: float = 30.0

    def delay(self, tries: int) -> float:
        ceiling = min(self.maximum, self.initial * 2 ** min(tries - 1, 30))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not a secret)


async def persist(
    write: Callable[[], Awaitable[T]],
    *,
    what: str,
    pace: RetryPace,
    abandon: asyncio.Event | None = None,
    on_error: Callable[[Exception], None] | None = None,
) -> T | None:
    """Run `write` (one transaction) until it lands and return its value; None once `abandon`
    is set. A store outage is waited out (WARNING); any other error is logged at ERROR with
    its type only (its text may quote the statement's values), passed to `on_error` so the
    next try can write less, and retried on the same backoff: giving up would repeat the run."""
    tries = 0
    waited = 0.0
    logged: tuple[float, int] | None = None  # (waited, level) of the last line logged
    while True:
        tries += 1
        try:
            return await write()
        except StoreUnavailable as exc:
            cause = failure_fields(exc)
            level, problem = logging.WARNING, f"store unavailable ({cause['error']})"
            host = cause.get("host")
        except Exception as exc:
            level, problem, host = logging.ERROR, type(exc).__name__, None
            if on_error is not None:
                on_error(exc)
        if abandon is not None and abandon.is_set():
            return None
        if logged is None or logged[1] != level or waited - logged[0] >= pace.warn_every:
            logged = (waited, level)
            log.log(
                level,
                f"could not {what}; retrying",
                extra={
                    "tries": tries,
                    "waited_seconds": round(waited, 1),
                    "problem": problem,
                    "host": host,
                },
            )
        delay = pace.delay(tries)
        await asyncio.sleep(delay)
        waited += delay


def log_reason(text: str, limit: int = 300) -> str:
    """A run's error as one short log field: its last non-empty line (a traceback's or a
    command's stderr's last line says what failed), cut to `limit` characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[-1] if lines else text
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def storable(text: str | None) -> str | None:
    """Text any store keeps: PostgreSQL refuses NUL characters, and lone surrogates have no
    UTF-8 form."""
    if text is None:
        return None
    return text.replace("\x00", "\ufffd").encode("utf-8", errors="replace").decode("utf-8")


FAILURES = (RunStatus.FAILED, RunStatus.TIMED_OUT)  # the ends a retry policy retries


@dataclass(frozen=True)
class Recorded:
    """What recording a run's end did: `recorded` False when a newer attempt owns the fire;
    `buffered` the job's buffered fire it started, to run with `target`; `retry_at` when the
    attempt failed and the next one waits in the store (status `retrying`)."""

    recorded: bool
    buffered: FireRecord | None = None
    target: dict[str, object] | None = None
    retry_at: datetime | None = None
    job_name: str | None = None  # for the log line that says how the run ended


class OutcomeRecorder:
    """Records runs' ends under their fencing token (`tx.fires.finish`), and in the same
    transaction starts the job's buffered fire, leased to `node_id`. A failed attempt that
    the job's retry policy retries is recorded instead as `retrying` (`tx.fires.retry_later`):
    the run is still going, and any replica starts its next attempt once due
    (`queue_due_retries`)."""

    def __init__(
        self,
        store: Store,
        *,
        node_id: str,
        lease: timedelta,
        pace: RetryPace,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.lease = lease
        self.pace = pace
        self.jitter = jitter

    async def record(
        self, fire: FireRecord, result: RunResult, finished_at: datetime, lease_lost: asyncio.Event
    ) -> Recorded:
        """Write the end until it lands. Only a lost lease (a newer attempt owns the fire) ends
        the wait without it: that is logged at WARNING, the outcome dropped."""
        degraded: list[str] = []

        def write_less(exc: Exception) -> None:
            degraded.append(type(exc).__name__)

        async def write() -> Recorded:
            output, error = storable(result.output), storable(result.error)
            if degraded:  # the full outcome failed for a reason other than an outage
                output, error = None, f"the run's output could not be stored ({degraded[0]})"
            return await self._write(fire, result, finished_at, output, error)

        recorded = await persist(
            write,
            what="record the run's outcome",
            pace=self.pace,
            abandon=lease_lost,
            on_error=write_less,
        )
        if recorded is None:
            log.warning("run outcome dropped: its lease was lost while it waited for the store")
            return Recorded(False)
        return recorded

    @staticmethod
    def log_end(result: RunResult, done: Recorded) -> None:
        """One line per run's end: INFO when it succeeded, WARNING with the job's name and
        the reason when it failed or timed out (and when its next attempt waits)."""
        fields: dict[str, object] = {"status": result.status, "recorded": done.recorded}
        if result.status not in FAILURES:
            log.info("run finished", extra=fields)
            return
        fields.update(job=done.job_name, reason=log_reason(result.error or result.status))
        if done.retry_at is not None:
            fields["retry_at"] = done.retry_at.isoformat()
            log.warning("run failed; its next attempt waits for its retry time", extra=fields)
        else:
            log.warning("run failed", extra=fields)

    async def _write(
        self,
        fire: FireRecord,
        result: RunResult,
        now: datetime,
        output: str | None,
        error: str | None,
    ) -> Recorded:
        async with self.store.transaction() as tx:
            # Lock the job first: an admission buffering a fire for it waits for us.
            job = await tx.jobs.get(fire.job_id, for_update=True)
            if (
                job is not None
                and result.status in FAILURES
                and job.retry.retries_after(fire.attempt)
            ):
                retrying = await self._retry_later(tx, fire, job.retry, result, now, output, error)
                return replace(retrying, job_name=job.name)
            recorded = await tx.fires.finish(
                fire.id,
                fire.fencing_token,
                status=result.status,
                finished_at=now,
                outcome=storable(result.outcome),
                output=output,
                error=error,
            )
            if not recorded or job is None:
                return Recorded(recorded, job_name=job.name if job else None)
            await tx.jobs.set_values(fire.job_id, {"last_status": result.status})
            buffered = await take_buffered(
                tx, fire.job_id, now, owner=self.node_id, lease=self.lease
            )
            return Recorded(True, buffered, job.target, job_name=job.name)

    async def _retry_later(
        self,
        tx: Tx,
        fire: FireRecord,
        policy: RetryPolicy,
        result: RunResult,
        now: datetime,
        output: str | None,
        error: str | None,
    ) -> Recorded:
        """Keep the failed attempt in the fire's history; the next waits as `retrying`."""
        retry_at = now + policy.delay(fire.attempt, self.jitter())
        outcome = storable(result.outcome)
        failed = AttemptRecord(fire.attempt, result.status, fire.started_at, now, outcome, error)
        recorded = await tx.fires.retry_later(
            fire.id,
            fire.fencing_token,
            retry_at=retry_at,
            failed=failed,
            outcome=outcome,
            output=output,
            error=error,
        )
        if not recorded:
            return Recorded(False)
        await tx.jobs.set_values(fire.job_id, {"last_status": RunStatus.RETRYING})
        return Recorded(True, retry_at=retry_at)


async def take_buffered(
    tx: Tx, job_id: str, now: datetime, *, owner: str, lease: timedelta
) -> FireRecord | None:
    """Claim the job's buffered fire for `owner` if no other run of the job is going or
    queued."""
    waiting = await tx.fires.buffered(job_id)
    if waiting is None or await tx.fires.running_count(job_id, now):
        return None
    return await tx.fires.start_buffered(
        waiting, owner=owner, lease_expires_at=now + lease, now=now
    )


async def queue_due_retries(store: Store, now: datetime) -> int:
    """Put runs whose next attempt is due back in the store's queue, where whichever replica
    has capacity starts them (`RunExecutor.start_queued`); returns how many."""
    async with store.transaction() as tx:
        return await tx.fires.queue_due_retries(now)
