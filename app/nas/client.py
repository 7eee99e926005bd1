"""The NAS client: provision, cancel and list one-shot arms, with classified retries."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from app.clock import parse_instant
from app.domain.fires import fire_dedup_key
from app.headers import parse_retry_after

log = logging.getLogger(__name__)


class NasError(Exception):
    """A NAS call failed. `transient` failures (transport, 5xx, 429) are worth retrying."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.status_code = status_code
        self.retry_after = retry_after


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, NasError) and exc.transient


@dataclass(frozen=True)
class RetryBudget:
    attempts: int
    max_seconds: float
    initial_wait: float = 0.2
    max_wait: float = 5.0


@dataclass(frozen=True)
class ArmedFire:
    job_id: str
    fire_at: datetime
    schedule_id: str


class _WaitRetryAfterOrBackoff:
    """Honour the server's `Retry-After` (capped), else exponential backoff with jitter."""

    def __init__(self, budget: RetryBudget) -> None:
        # NAS's Retry-After is honoured as given; past the budget the call gives up (stop).
        self.cap = budget.max_seconds
        self.backoff = wait_exponential_jitter(
            multiplier=budget.initial_wait, max=budget.max_wait, jitter=budget.initial_wait
        )

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, NasError) and exc.retry_after is not None:
            return min(exc.retry_after, self.cap)
        return float(self.backoff(state))


def _log_before_sleep(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0
    log.warning(
        "NAS call failed, retrying",
        extra={"attempt": state.attempt_number, "error": str(exc), "wait_seconds": round(wait, 3)},
    )


class NasClient:
    """Hop 1 of the contract. One instance per process, sharing the app's httpx client."""

    def __init__(
        self, http: httpx.AsyncClient, portal_url: str, token: str, *, budget: RetryBudget
    ) -> None:
        self._http = http
        self._base = portal_url.rstrip("/")
        self._token = token
        self.budget = budget

    async def provision(
        self,
        job_id: str,
        fire_at: datetime,
        callback_url: str,
        *,
        budget: RetryBudget | None = None,
    ) -> str:
        """Arm the job's one-shot at `fire_at`; returns NAS's schedule id."""
        body = {
            "job_id": job_id,
            "fire_at": fire_at.astimezone(UTC).isoformat(),
            "agent_callback_url": callback_url.rstrip("/"),
            "dedup_key": fire_dedup_key(job_id, fire_at),
        }
        data = await self._call("POST", "/api/agent-cron/provision", json=body, budget=budget)
        schedule_id = data.get("schedule_id")
        if not isinstance(schedule_id, str):
            raise NasError("provision answer has no schedule_id", transient=False)
        return schedule_id

    async def cancel(self, job_id: str, *, budget: RetryBudget | None = None) -> None:
        """Cancel the job's arm; cancelling an unknown job is a no-op at NAS."""
        await self._call("POST", "/api/agent-cron/cancel", json={"job_id": job_id}, budget=budget)

    async def list_armed(self, *, budget: RetryBudget | None = None) -> list[ArmedFire]:
        """Every arm NAS holds for this agent, following `next_cursor` pages."""
        armed: list[ArmedFire] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params = {"cursor": cursor} if cursor else None
            data = await self._call("GET", "/api/agent-cron/list", params=params, budget=budget)
            items = data.get("armed")
            if not isinstance(items, list):
                raise NasError("list answer has no 'armed' array", transient=False)
            for item in items:
                try:
                    armed.append(
                        ArmedFire(
                            job_id=str(item["job_id"]),
                            fire_at=parse_instant(str(item["fire_at"])),
                            schedule_id=str(item.get("schedule_id") or ""),
                        )
                    )
                except (KeyError, TypeError, ValueError) as exc:
                    raise NasError(
                        f"list answer has a malformed entry: {exc}", transient=False
                    ) from exc
            cursor = data.get("next_cursor") or None
            if cursor is None:
                return armed
            if cursor in seen:
                raise NasError("list pagination loops on the same cursor", transient=False)
            seen.add(cursor)

    async def _call(
        self, method: str, path: str, *, budget: RetryBudget | None, **kwargs: Any
    ) -> dict[str, Any]:
        budget = budget or self.budget
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_transient),
            # stop_before_delay counts the coming wait: a Retry-After past the budget ends
            # the call at once instead of sleeping through the budget first.
            stop=stop_after_attempt(budget.attempts) | stop_before_delay(budget.max_seconds),
            wait=_WaitRetryAfterOrBackoff(budget),
            before_sleep=_log_before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(method, path, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        try:
            response = await self._http.request(
                method, self._base + path, headers=headers, **kwargs
            )
        except httpx.RequestError as exc:  # transport, protocol and decoding failures
            raise NasError(f"{method} {path}: {exc.__class__.__name__}", transient=True) from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise NasError(
                f"{method} {path}: HTTP {status}",
                transient=True,
                status_code=status,
                retry_after=parse_retry_after(
                    response.headers.get("Retry-After"), datetime.now(UTC)
                ),
            )
        if status >= 400:
            raise NasError(
                f"{method} {path}: HTTP {status}: {_error_detail(response)}",
                transient=False,
                status_code=status,
            )
        try:
            data = response.json()
        except ValueError as exc:
            raise NasError(f"{method} {path}: answer is not JSON", transient=True) from exc
        if not isinstance(data, dict):
            raise NasError(f"{method} {path}: answer is not a JSON object", transient=False)
        return data


def _error_detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(data, dict):
        return str(data.get("detail") or data.get("error") or data)[:200]
    return str(data)[:200]
