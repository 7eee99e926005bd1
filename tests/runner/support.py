"""What the executor tests share: a manual clock, a store whose availability the test
switches, and fires admitted straight into the store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx

from app.domain.fires import fire_dedup_key, new_fire
from app.domain.records import FireRecord
from app.domain.states import RunKind, RunStatus
from app.logs import ContextFilter, record_fields
from app.runner.executor import RunExecutor
from app.runner.outcomes import RetryPace
from app.runner.targets import TargetRunner
from app.store import Store, StoreUnavailable, Tx
from tests.support.records import job_row

START = datetime(2030, 1, 1, 12, tzinfo=UTC)
FAST = RetryPace(initial=0.05, maximum=0.2, warn_every=30.0)


class ManualClock:
    """The executor's clock, moved by the test alone."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class SwitchableStore(Store):
    """The real store, and switches: `down` makes every transaction fail as an outage does;
    `failure` makes the next transactions raise it (a fault that is not an outage)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.engine)
        self.down = False
        self.failure: Exception | None = None
        self.failed = 0  # transactions refused so far

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        if self.down:
            self.failed += 1
            self.last_unavailable_at = time.monotonic()
            raise StoreUnavailable("the test stopped the database")
        if self.failure is not None:
            self.failed += 1
            raise self.failure
        async with super().transaction() as tx:
            yield tx


def replica(
    store: Store,
    http: httpx.AsyncClient,
    node: str,
    *,
    clock: Callable[[], datetime],
    lease: int = 5,
    capacity: int = 32,
    pace: RetryPace = FAST,
) -> RunExecutor:
    return RunExecutor(
        store,
        TargetRunner(http, max_output_bytes=4096, python_workers=2),
        node_id=node,
        lease_seconds=lease,
        clock=clock,
        max_concurrent_runs=capacity,
        pace=pace,
    )


def python(callable_name: str, /, **kwargs: object) -> dict[str, object]:
    return {
        "type": "python",
        "callable": f"tests.runner.sample_callables:{callable_name}",
        "kwargs": kwargs,
    }


async def admit(
    store: Store,
    owner: str,
    *,
    now: datetime,
    lease: int = 5,
    job_id: str = "job-1",
    target: dict[str, object] | None = None,
) -> FireRecord:
    """The job (created if new) and its fire at `now`, admitted `running` under `owner`'s lease."""
    async with store.transaction() as tx:
        if await tx.jobs.get(job_id) is None:
            row = job_row(job_id, next_run_at=now + timedelta(minutes=1))
            if target is not None:
                row["target"] = target
            await tx.jobs.insert(row)
        return await tx.fires.insert(
            new_fire(
                job_id=job_id,
                fire_at=now,
                dedup_key=fire_dedup_key(job_id, now),
                kind=RunKind.SCHEDULED,
                status=RunStatus.RUNNING,
                now=now,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease),
            )
        )


async def stored(store: Store, fire_id: int) -> FireRecord:
    async with store.transaction() as tx:
        fire = await tx.fires.get(fire_id)
    assert fire is not None
    return fire


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def capture_context(handler: logging.Handler) -> None:
    """Let `caplog` records carry the run's bound context (`job_id`, `fire_at`, `attempt`)."""
    handler.addFilter(ContextFilter())


def lines(records: list[logging.LogRecord], message: str) -> list[dict[str, object]]:
    """The fields of the records whose message starts with `message`, with their level."""
    return [
        {"level": r.levelname, **record_fields(r)}
        for r in records
        if r.getMessage().startswith(message)
    ]
