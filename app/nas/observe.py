"""NAS calls in the metrics: `chronos_nas_requests_total{op,result}` and their duration."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TypeVar

from app.metrics.registry import Metrics
from app.nas.errors import CredentialsRefused, CredentialsUnavailable, NasError

T = TypeVar("T")


def nas_result(exc: NasError) -> str:
    """The `result` label of a failed request: `transient` (transport, 5xx, 429),
    `credentials_refused`, `credentials_unavailable` or `permanent` (NAS refused the
    operation: another 4xx, a redirect, a 501)."""
    if isinstance(exc, CredentialsUnavailable):
        return "credentials_unavailable"
    if isinstance(exc, CredentialsRefused):
        return "credentials_refused"
    return "transient" if exc.transient else "permanent"


async def measured(metrics: Metrics, path: str, request: Awaitable[T]) -> T:
    """Await one request to NAS's `path` (its last segment is the `op` label), counted by its
    result and timed. A cancelled request is not counted."""
    op = path.rsplit("/", 1)[-1]
    started = time.perf_counter()
    try:
        answer = await request
    except NasError as exc:
        metrics.nas_request(op, nas_result(exc), time.perf_counter() - started)
        raise
    metrics.nas_request(op, "ok", time.perf_counter() - started)
    return answer
