"""Delivery of fires to agents: `POST {agent_callback_url}/api/cron/fire` with a fresh JWT.

One scheduler task sleeps until the earliest due arm, or until the registry reports a change.
Each attempt runs as its own task, bounded by a semaphore, so a slow agent never holds up the
fires of other jobs. Outcomes go back to the registry, which re-schedules failed attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import ssl
from datetime import datetime
from typing import Any

import httpx

from app.clock import Clock, utc_now
from app.domain.fires import FIRE_PURPOSE
from app.emulator.config import EmulatorConfig
from app.emulator.keys import SigningKey
from app.emulator.records import AttemptResult, DeliveryTicket
from app.emulator.state import ArmRegistry
from app.emulator.variants import FireAtMode
from app.headers import parse_retry_after

logger = logging.getLogger(__name__)

FIRE_PATH = "/api/cron/fire"
MAX_CONCURRENT_DELIVERIES = 32
RESPONSE_BODY_LIMIT = 2048
# Upper bound on one sleep of the scheduler, so a wall-clock jump cannot delay fires for long.
MAX_SLEEP_SECONDS = 30.0
USER_AGENT = "nas-emulator (chronos)"


def default_http_client(config: EmulatorConfig) -> httpx.AsyncClient:
    """The client fires are delivered with: explicit timeouts and limits, no redirects.

    `trust_env=False`: NAS reaches agents directly, so proxy variables of a developer's shell
    must not reroute (or break) deliveries to loopback agents. TLS trusts the public CAs, plus
    `config.ca_file` when set.
    """
    return httpx.AsyncClient(
        verify=delivery_tls_context(config),
        timeout=httpx.Timeout(config.delivery_timeout_seconds),
        limits=httpx.Limits(
            max_connections=MAX_CONCURRENT_DELIVERIES,
            max_keepalive_connections=MAX_CONCURRENT_DELIVERIES,
        ),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


def delivery_tls_context(config: EmulatorConfig) -> ssl.SSLContext:
    """httpx's default context (certifi's bundle), with `config.ca_file`'s authorities added."""
    context = httpx.create_ssl_context(trust_env=False)
    if config.ca_file is not None:
        context.load_verify_locations(cafile=config.ca_file)
    return context


def fire_url(agent_callback_url: str) -> str:
    return agent_callback_url.rstrip("/") + FIRE_PATH


def fire_token_claims(
    *, config: EmulatorConfig, instance_id: str, job_id: str, fire_at: str | None, now: datetime
) -> dict[str, Any]:
    """Claims of the JWT authorising one fire attempt (hop 3 of the contract); without
    `fire_at`, the token has no `fire_at` claim."""
    issued_at = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": config.public_url,
        "aud": f"agent:{instance_id}",
        "purpose": FIRE_PURPOSE,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + config.token_ttl_seconds,
        "jti": secrets.token_urlsafe(16),
        "job_id": job_id,
    }
    if fire_at is not None:
        claims["fire_at"] = fire_at
    return claims


def fire_body(job_id: str, fire_at: str | None) -> dict[str, str]:
    """The JSON body of a fire: `{"job_id", "fire_at"}`, or `{"job_id"}` without `fire_at`."""
    return {"job_id": job_id} if fire_at is None else {"job_id": job_id, "fire_at": fire_at}


class DeliveryScheduler:
    """Runs the delivery loop for one registry; `start()` and `stop()` belong to the lifespan."""

    def __init__(
        self,
        *,
        registry: ArmRegistry,
        signing_key: SigningKey,
        config: EmulatorConfig,
        http_client: httpx.AsyncClient,
        clock: Clock = utc_now,
        max_concurrency: int = MAX_CONCURRENT_DELIVERIES,
    ) -> None:
        self._registry = registry
        self._signing_key = signing_key
        self._config = config
        self._client = http_client
        self._clock = clock
        self._slots = asyncio.Semaphore(max_concurrency)
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._attempts: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._loop_task is not None:
            raise RuntimeError("the delivery scheduler is already running")
        self._registry.add_listener(self.wake)
        self._loop_task = asyncio.create_task(self._run(), name="nas-emulator-scheduler")

    async def stop(self) -> None:
        """Stop the loop and cancel queued or in-flight attempts (their arms stay armed)."""
        if self._loop_task is None:
            return
        self._registry.remove_listener(self.wake)
        tasks = [self._loop_task, *self._attempts]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None

    def wake(self) -> None:
        """Make the loop re-read the registry: something was armed, cancelled or re-scheduled."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            for ticket in self._registry.take_due(self._clock()):
                task = asyncio.create_task(self._deliver(ticket))
                self._attempts.add(task)
                task.add_done_callback(self._attempts.discard)
            next_due = self._registry.next_due_at()
            timeout = None
            if next_due is not None:
                timeout = min(
                    max((next_due - self._clock()).total_seconds(), 0.0), MAX_SLEEP_SECONDS
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _deliver(self, ticket: DeliveryTicket) -> None:
        try:
            async with self._slots:
                # The arm may have been cancelled or replaced while this attempt was queued.
                if not self._registry.is_current(ticket):
                    return
                try:
                    result = await self._attempt(ticket)
                except Exception as exc:
                    # A bug here must not strand the arm as "delivering" forever: record the
                    # attempt as failed so it goes through backoff like any other failure.
                    logger.exception("delivery attempt crashed", extra={"job_id": ticket.job_id})
                    result = AttemptResult(
                        started_at=self._clock(),
                        status_code=None,
                        error=f"emulator error: {type(exc).__name__}",
                    )
            self._registry.complete_attempt(ticket, result, consume=self._config.consume)
        except asyncio.CancelledError:
            # Shutdown: the attempt is unfinished, so its arm is due again (at-least-once).
            self._registry.release(ticket)
            raise

    async def _attempt(self, ticket: DeliveryTicket) -> AttemptResult:
        started_at = self._clock()
        fire_at = ticket.fire_at if self._config.fire_at is FireAtMode.PROVISIONED else None
        claims = fire_token_claims(
            config=self._config,
            instance_id=ticket.instance_id,
            job_id=ticket.job_id,
            fire_at=fire_at,
            now=started_at,
        )
        body = json.dumps(fire_body(ticket.job_id, fire_at)).encode("utf-8")
        headers = {
            "Authorization": f"Bearer {self._signing_key.sign(claims)}",
            "Content-Type": "application/json",
        }
        try:
            async with self._client.stream(
                "POST", fire_url(ticket.agent_callback_url), content=body, headers=headers
            ) as response:
                response_body = await _read_prefix(response, RESPONSE_BODY_LIMIT)
        except httpx.HTTPError as exc:
            return AttemptResult(
                started_at=started_at,
                status_code=None,
                error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            )
        return AttemptResult(
            started_at=started_at,
            status_code=response.status_code,
            response_body=response_body,
            retry_after=parse_retry_after(response.headers.get("retry-after"), self._clock()),
        )


async def _read_prefix(response: httpx.Response, limit: int) -> str:
    """The first `limit` bytes of the body, decoded leniently; the rest is never read."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit].decode("utf-8", errors="replace")
