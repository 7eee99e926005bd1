"""Runs that get a second chance, under a manual clock: a failed attempt waits in the store as
`retrying` (its outcome kept in the run's history), the next starts once due with the same
dedup key and the next attempt number, on whichever replica runs the housekeeping step (a
fresh one after a restart too), and the last failure leaves the run `failed` with its count.
A run awaiting a retry is still going for the overlap policies."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import httpx
import pytest

from app.domain.fires import fire_dedup_key, new_fire
from app.domain.records import FireRecord
from app.domain.states import RunKind, RunStatus
from app.maintenance import start_due_retries
from app.runner.executor import RunExecutor
from app.services import Services
from app.store import Store
from tests.runner.support import ManualClock, admit, replica, stored
from tests.support.records import job_row

pytestmark = pytest.mark.asyncio

BACKOFF = 10
SCRIPT = (
    "import os, sys; open(sys.argv[1], 'a').write("
    "os.environ['CHRONOS_DEDUP_KEY'] + ' ' + os.environ['CHRONOS_ATTEMPT'] + '\\n');"
    " sys.exit(0 if int(os.environ['CHRONOS_ATTEMPT']) >= int(sys.argv[2]) else 3)"
)


def flaky(log: Path, succeeds_at: int = 99) -> dict[str, object]:
    """A command that notes its dedup key and attempt, and fails before `succeeds_at`."""
    return {"type": "command", "argv": [sys.executable, "-c", SCRIPT, str(log), str(succeeds_at)]}


async def retried_job(store: Store, clock: ManualClock, target: dict[str, object]) -> FireRecord:
    async with store.transaction() as tx:
        await tx.jobs.insert(
            job_row(
                "job-1",
                next_run_at=clock() + timedelta(minutes=1),
                target=target,
                retry_max_attempts=3,
                retry_backoff_seconds=BACKOFF,
                retry_max_backoff_seconds=15,
            )
        )
    return await admit(store, "a", now=clock(), target=target)


async def housekeeping(store: Store, executor: RunExecutor) -> int:
    """One round of the "start due retries" step, as the maintenance loop runs it."""
    services = cast(Services, SimpleNamespace(store=store, executor=executor))
    due = await start_due_retries(services)
    await executor.wait_idle(timeout=30)
    return due


async def test_a_failing_command_is_retried_with_backoff_until_it_fails_for_good(
    store: Store, tmp_path: Path
) -> None:
    clock = ManualClock()
    log = tmp_path / "attempts.log"
    fire = await retried_job(store, clock, flaky(log))
    async with httpx.AsyncClient() as http:
        executor = replica(store, http, "a", clock=clock)
        executor.start(fire, flaky(log))
        await executor.wait_idle(timeout=30)

        first = await stored(store, fire.id)
        assert (first.status, first.attempt) == (RunStatus.RETRYING, 1)
        assert first.retry_at is not None
        assert clock() + timedelta(seconds=BACKOFF / 2) <= first.retry_at
        assert first.retry_at <= clock() + timedelta(seconds=BACKOFF)
        assert [(a.attempt, a.status, a.outcome) for a in first.previous_attempts] == [
            (1, RunStatus.FAILED, "exit 3")
        ]
        assert await housekeeping(store, executor) == 0  # not due yet

        clock.advance(BACKOFF)
        assert await housekeeping(store, executor) == 1
        second = await stored(store, fire.id)
        assert (second.status, second.attempt) == (RunStatus.RETRYING, 2)
        assert second.retry_at is not None
        # twice the backoff, capped at max_backoff_seconds (15), jittered down to half at most
        assert (
            clock() + timedelta(seconds=7.5) <= second.retry_at <= clock() + timedelta(seconds=15)
        )

        clock.advance(15)
        assert await housekeeping(store, executor) == 1
        last = await stored(store, fire.id)

    assert (last.status, last.attempt, last.outcome, last.retry_at) == (
        RunStatus.FAILED,
        3,
        "exit 3",
        None,
    )
    assert [(a.attempt, a.status) for a in last.previous_attempts] == [
        (1, RunStatus.FAILED),
        (2, RunStatus.FAILED),
    ]
    key = fire_dedup_key("job-1", fire.fire_at)
    assert log.read_text().splitlines() == [f"{key} 1", f"{key} 2", f"{key} 3"]
    async with store.transaction() as tx:
        job = await tx.jobs.get("job-1")
        failed = await tx.fires.list_by_status(RunStatus.FAILED, limit=10)
    assert job is not None and job.last_status == RunStatus.FAILED
    assert [f.id for f in failed] == [fire.id]


async def test_a_retry_due_while_the_agent_was_down_is_run_by_a_fresh_agent(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    clock = ManualClock()
    log = tmp_path / "attempts.log"
    target = flaky(log, succeeds_at=2)
    fire = await retried_job(store, clock, target)
    async with httpx.AsyncClient() as http:
        before = replica(store, http, "a", clock=clock)
        before.start(fire, target)
        await before.wait_idle(timeout=30)
        await before.shutdown(grace=1)  # the agent stops with the retry waiting in the store
    assert (await stored(store, fire.id)).status == RunStatus.RETRYING

    clock.advance(BACKOFF * 60)  # it stayed down past the retry's time
    fresh_store = Store.from_url(database_url)
    try:
        async with httpx.AsyncClient() as http:
            fresh = replica(fresh_store, http, "b", clock=clock)
            assert await housekeeping(fresh_store, fresh) == 1
        done = await stored(fresh_store, fire.id)
    finally:
        await fresh_store.close()
    assert (done.status, done.attempt, done.lease_owner) == (RunStatus.SUCCEEDED, 2, None)
    assert [(a.attempt, a.status) for a in done.previous_attempts] == [(1, RunStatus.FAILED)]
    key = fire_dedup_key("job-1", fire.fire_at)
    assert log.read_text().splitlines() == [f"{key} 1", f"{key} 2"]


async def test_a_timed_out_attempt_is_retried(store: Store) -> None:
    clock = ManualClock()
    sleeper = {
        "type": "command",
        "argv": [sys.executable, "-c", "import time; time.sleep(10)"],
        "timeout_seconds": 0.3,
    }
    fire = await retried_job(store, clock, sleeper)
    async with httpx.AsyncClient() as http:
        executor = replica(store, http, "a", clock=clock)
        executor.start(fire, sleeper)
        await executor.wait_idle(timeout=30)
    waiting = await stored(store, fire.id)
    assert waiting.status == RunStatus.RETRYING
    assert [a.status for a in waiting.previous_attempts] == [RunStatus.TIMED_OUT]


async def test_without_a_retry_policy_a_failed_run_is_failed_at_once(
    store: Store, tmp_path: Path
) -> None:
    clock = ManualClock()
    target = flaky(tmp_path / "attempts.log")
    fire = await admit(store, "a", now=clock(), target=target)  # default policy: 1 attempt
    async with httpx.AsyncClient() as http:
        executor = replica(store, http, "a", clock=clock)
        executor.start(fire, target)
        await executor.wait_idle(timeout=30)
    done = await stored(store, fire.id)
    assert (done.status, done.attempt, done.previous_attempts) == (RunStatus.FAILED, 1, ())


async def test_a_run_awaiting_its_retry_is_still_going_for_the_overlap_policies(
    store: Store, tmp_path: Path
) -> None:
    clock = ManualClock()
    target = flaky(tmp_path / "attempts.log")
    fire = await retried_job(store, clock, target)
    async with httpx.AsyncClient() as http:
        executor = replica(store, http, "a", clock=clock)
        executor.start(fire, target)
        await executor.wait_idle(timeout=30)
    later = clock() + timedelta(minutes=1)
    async with store.transaction() as tx:
        await tx.fires.insert(
            new_fire(
                job_id="job-1",
                fire_at=later,
                dedup_key=fire_dedup_key("job-1", later),
                kind=RunKind.SCHEDULED,
                status=RunStatus.BUFFERED,
                now=later,
            )
        )
        assert await tx.fires.running_count("job-1", later) == 1
        assert await tx.fires.stranded_buffered() == []  # it waits for the retries to end
