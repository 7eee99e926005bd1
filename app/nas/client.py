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

from app.domain.fires import fire_dedup_key
from app.headers import parse_retry_after
from app.logs import failure_fields
from app.metrics.registry import Metrics
from app.nas.credentials import NasCredentials, StaticToken
from app.nas.errors import (
    CREDENTIAL_STATUSES,
    CredentialsRefused,
    CredentialsUnavailable,
    NasError,
    retry_within_call,
)
from app.nas.health import LIST_UNSUPPORTED_STATUSES, NasHealth
from app.nas.observe import measured

__all__ = ["ArmedFire", "ListUnsupported", "NasClient", "NasError", "RetryBudget"]

log = logging.getLogger(__name__)

_LIST_PATH = "/api/agent-cron/list"


@dataclass(frozen=True)
class RetryBudget:
    attempts: int
    max_seconds: float
    initial_wait: float = 0.2
    max_wait: float = 5.0


class ListUnsupported(NasError):
    """NAS has no `list` endpoint (404, 405 or 501): reconcile cannot observe its arms."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message, transient=False, status_code=status_code)


@dataclass(frozen=True)
class ArmedFire:
    job_id: str
    fire_at: datetime | None  # None: armed at a time NAS did not say (reconcile re-arms it)
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
        extra={
            "tries": state.attempt_number,
            **(failure_fields(exc) if exc is not None else {}),
            "wait_seconds": round(wait, 3),
        },
    )


class NasClient:
    """Hop 1 of the contract. One instance per process, sharing the app's httpx client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        portal_url: str,
        credentials: NasCredentials | str,
        *,
        budget: RetryBudget,
        health: NasHealth | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`credentials` supply the bearer token of each call (a string: a fixed token);
        `health` records what each call learned about NAS."""
        self._http = http
        self._base = portal_url.rstrip("/")
        self._credentials = (
            StaticToken(credentials) if isinstance(credentials, str) else credentials
        )
        self.budget = budget
        self.health = health or NasHealth()
        self.metrics = metrics or Metrics()

    async def provision(
        self,
        job_id: str,
        fire_at: datetime,
        callback_url: str,
        *,
        budget: RetryBudget | None = None,
    ) -> str | None:
        """Arm the job's one-shot at `fire_at`. Any 2xx means armed; returns NAS's schedule id
        when its answer carries one (a string or a number), else None."""
        body = {
            "job_id": job_id,
            "fire_at": fire_at.astimezone(UTC).isoformat(),
            "agent_callback_url": callback_url.rstrip("/"),
            "dedup_key": fire_dedup_key(job_id, fire_at),
        }
        data = await self._call("POST", "/api/agent-cron/provision", json=body, budget=budget)
        schedule_id = data.get("schedule_id")
        if isinstance(schedule_id, bool) or not isinstance(schedule_id, str | int):
            return None
        return str(schedule_id)

    async def cancel(self, job_id: str, *, budget: RetryBudget | None = None) -> None:
        """Cancel the job's arm. Any 2xx, 404 or 410 means the arm is gone."""
        await self._call(
            "POST",
            "/api/agent-cron/cancel",
            json={"job_id": job_id},
            budget=budget,
            gone_is_done=True,
        )

    async def list_armed(self, *, budget: RetryBudget | None = None) -> list[ArmedFire]:
        """Every arm NAS holds for this agent, following `next_cursor` pages.

        Read tolerantly: `armed` missing is an empty list, unknown fields are ignored, an item
        without a usable `fire_at` is armed at an unknown time, a `fire_at` without an offset is
        UTC. `ListUnsupported` when NAS has no list at all."""
        armed: list[ArmedFire] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params = {"cursor": cursor} if cursor else None
            try:
                data = await self._call("GET", _LIST_PATH, params=params, budget=budget)
            except NasError as exc:
                if exc.status_code in LIST_UNSUPPORTED_STATUSES:
                    self.health.record_list(supported=False)
                    raise ListUnsupported(str(exc), status_code=exc.status_code) from exc
                raise
            items = data.get("armed") or []  # missing or null: nothing armed
            if not isinstance(items, list):
                raise NasError("list answer: 'armed' is not an array", transient=False)
            armed.extend(entry for item in items if (entry := _armed_entry(item)) is not None)
            cursor = data.get("next_cursor") or None
            if cursor is None:
                self.health.record_list(supported=True)
                return armed
            if cursor in seen:
                raise NasError("list pagination loops on the same cursor", transient=False)
            seen.add(cursor)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        budget: RetryBudget | None,
        gone_is_done: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        budget = budget or self.budget
        retrying = AsyncRetrying(
            retry=retry_if_exception(retry_within_call),
            # stop_before_delay counts the coming wait: a Retry-After past the budget ends
            # the call at once instead of sleeping through the budget first.
            stop=stop_after_attempt(budget.attempts) | stop_before_delay(budget.max_seconds),
            wait=_WaitRetryAfterOrBackoff(budget),
            before_sleep=_log_before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    data = await self._once(method, path, gone_is_done=gone_is_done, **kwargs)
                    self.health.record_success()
                    return data
        except NasError as exc:
            self.health.record_failure(exc, listing=path == _LIST_PATH)
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One call (`_exchange`), counted and timed in the metrics."""
        return await measured(self.metrics, path, self._exchange(method, path, **kwargs))

    async def _exchange(
        self, method: str, path: str, *, gone_is_done: bool, **kwargs: Any
    ) -> dict[str, Any]:
        """One call; the answer's JSON object, or {} for a 2xx without one.

        A 401 or 403 refreshes the credentials and sends the call once more at once (a token
        that was only just rotated at NAS may be the same one, yet accepted now); refused
        again, it is `CredentialsRefused`.
        """
        token = await self._credentials.token()
        response = await self._request(method, path, token, **kwargs)
        if response.status_code in CREDENTIAL_STATUSES:
            response, token = await self._with_refreshed_token(
                response, method, path, token, kwargs
            )
        return _answer(response, method, path, token, gone_is_done=gone_is_done)

    async def _request(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            return await self._http.request(method, self._base + path, headers=headers, **kwargs)
        except httpx.RequestError as exc:  # transport, protocol and decoding failures
            raise NasError(f"{method} {path}: {exc.__class__.__name__}", transient=True) from exc

    async def _with_refreshed_token(
        self,
        refused: httpx.Response,
        method: str,
        path: str,
        token: str,
        kwargs: dict[str, Any],
    ) -> tuple[httpx.Response, str]:
        status = refused.status_code
        head = f"{method} {path}: NAS refused the agent's credentials (HTTP {status})"
        try:
            fresh = await self._credentials.refresh(token)
        except CredentialsUnavailable as exc:
            raise CredentialsRefused(
                f"{head}; refreshing them failed: {exc}", status_code=status
            ) from exc
        log.info(
            "NAS refused the agent's credentials; retrying once with refreshed ones",
            extra={"status": status, "token_changed": fresh != token},
        )
        response = await self._request(method, path, fresh, **kwargs)
        if response.status_code in CREDENTIAL_STATUSES:
            detail = _error_detail(response, token, fresh)
            raise CredentialsRefused(
                f"{method} {path}: NAS refused the agent's credentials"
                f" (HTTP {response.status_code}) after a refresh: {detail}",
                status_code=response.status_code,
            )
        return response, fresh


def _answer(
    response: httpx.Response, method: str, path: str, token: str, *, gone_is_done: bool
) -> dict[str, Any]:
    """NAS's answer read, or the failure it stands for raised."""
    status = response.status_code
    if status == 429 or (status >= 500 and status != 501):  # 501: not implemented, ever
        raise NasError(
            f"{method} {path}: HTTP {status}",
            transient=True,
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC)),
        )
    if gone_is_done and status in (404, 410):
        return {}
    if 300 <= status < 400:
        # Only a 2xx means done: a redirect (a firewall, an SSO page, a moved portal) armed
        # nothing. Not followed: the bearer token must not travel to wherever it points.
        raise NasError(
            f"{method} {path}: HTTP {status}: unexpected redirect (check CHRONOS_PORTAL_URL)",
            transient=False,
            status_code=status,
        )
    if status >= 400:
        raise NasError(
            f"{method} {path}: HTTP {status}: {_error_detail(response, token)}",
            transient=False,
            status_code=status,
        )
    try:
        data = response.json() if response.content.strip() else {}
    except ValueError:
        data = {}  # a 2xx is the answer that counts; its body is only a bonus
    return data if isinstance(data, dict) else {}


def _redacted(text: str, *tokens: str) -> str:
    """`text` with the agent's tokens masked, should NAS echo one back."""
    for token in tokens:
        if token:
            text = text.replace(token, "[redacted]")
    return text


def _error_detail(response: httpx.Response, *tokens: str) -> str:
    """NAS's explanation, at most 200 characters, with the agent's tokens masked first (so
    that no fragment of one survives the cut)."""
    try:
        data = response.json()
    except ValueError:
        return _redacted(response.text, *tokens)[:200]
    if isinstance(data, dict):
        data = data.get("detail") or data.get("error") or data
    return _redacted(str(data), *tokens)[:200]


def _armed_entry(item: object) -> ArmedFire | None:
    """One `armed` item, or None when it names no job (nothing can be done with it)."""
    if not isinstance(item, dict) or not isinstance(item.get("job_id"), str | int):
        log.warning("NAS list: an item without a job_id was skipped")
        return None
    fire_at: datetime | None = None
    raw = item.get("fire_at")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
            fire_at = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
        except (ValueError, OverflowError):
            fire_at = None
    schedule_id = item.get("schedule_id")
    return ArmedFire(
        job_id=str(item["job_id"]),
        fire_at=fire_at,
        schedule_id="" if schedule_id is None else str(schedule_id),
    )
