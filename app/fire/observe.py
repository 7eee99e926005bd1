"""What the metrics call a fire's answer: `chronos_fires_total{outcome}` and the admission
time. Counters only: nothing here reads or writes anything."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from app.domain.states import FireOutcome, IgnoredReason
from app.errors import ChronosError
from app.fire.answers import FireAnswer
from app.metrics.registry import Metrics
from app.store import StoreUnavailable

_IGNORED = {str(reason): f"ignored_{reason}" for reason in IgnoredReason}
_ANSWERED = frozenset(str(outcome) for outcome in FireOutcome)
_REJECTED = {400: "rejected_400", 401: "rejected_401", 413: "rejected_413"}


def answer_outcome(answer: FireAnswer) -> str:
    """The answer's `status`, `ignored_<reason>` for an ignored fire, `unavailable` for 503."""
    if answer.status_code >= 500:
        return "unavailable"
    status = answer.body.get("status")
    if status == FireOutcome.IGNORED:
        return _IGNORED.get(str(answer.body.get("reason")), "ignored_other")
    return str(status) if status in _ANSWERED else "error"


def error_outcome(exc: BaseException) -> str:
    """The outcome of a fire answered by an error: `rejected_<status>` for 400, 401 and 413,
    `unavailable` for a 503 (keys or store unavailable, draining, overloaded)."""
    if isinstance(exc, StoreUnavailable):
        return "unavailable"
    if isinstance(exc, ChronosError):
        if exc.status_code == 503:
            return "unavailable"
        return _REJECTED.get(exc.status_code, "error")
    return "error"


@contextmanager
def observed_fire(metrics: Metrics) -> Iterator[Callable[[FireAnswer], None]]:
    """Count the fire handled inside the block and time it; the block calls the function it
    is given with the answer. An exception is counted by `error_outcome`; a cancelled call
    (the caller went away) is not counted."""
    started = time.perf_counter()
    outcome = "error"

    def answered(answer: FireAnswer) -> None:
        nonlocal outcome
        outcome = answer_outcome(answer)

    try:
        yield answered
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        outcome = error_outcome(exc)
        metrics.fire_answered(outcome, time.perf_counter() - started)
        raise
    metrics.fire_answered(outcome, time.perf_counter() - started)
