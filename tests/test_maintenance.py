"""Housekeeping steps are independent: each has its own loop and cadence, so resuming runs and
starting queued ones never wait behind a hung NAS push; a failing step is logged with its name
and keeps its loop; cancelling the maintenance task cancels and awaits every step. The purges
and the periodic reconcile run on one replica at a time (a lease row); the startup reconcile
runs on every replica."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import cast

import pytest
import pytest_asyncio

from app.clock import Clock, utc_now
from app.maintenance import (
    Step,
    housekeeping_steps,
    maintenance_loop,
    run_step,
    startup_reconcile,
)
from app.reconcile.service import ReconcileReport
from app.services import Services, StartupState
from app.settings import Settings
from app.store import Store, StoreUnavailable
from tests.support import ManualUtcClock

pytestmark = pytest.mark.asyncio

SINGLETONS = ("purge completed jobs", "purge expired fire tokens", "periodic reconcile")


def fake_services(
    calls: Counter[str],
    store: Store,
    *,
    reconcile_every: float = 0.0,
    node: str = "a",
    clock: Clock = utc_now,
) -> Services:
    """Services of replica `node` whose housekeeping calls are counted, over a real store (the
    leases); the NAS push hangs for good."""

    def counted(name: str) -> object:
        async def step(*_args: object, **_kwargs: object) -> int:
            calls[name] += 1
            return 0

        return step

    async def hung_push(**_kwargs: object) -> None:
        calls["push"] += 1
        await asyncio.Event().wait()

    async def reconcile() -> ReconcileReport:
        calls["reconcile"] += 1
        return ReconcileReport()

    settings = SimpleNamespace(
        completed_retention_seconds=60,
        reconcile_concurrency=2,
        reconcile_interval_seconds=reconcile_every,
        node_id=node,
    )
    services = SimpleNamespace(
        settings=cast(Settings, settings),
        store=store,
        executor=SimpleNamespace(
            clock=clock,
            recover_expired=counted("recover"),
            start_queued=counted("queued"),
            start_stranded_buffered=counted("buffered"),
        ),
        pusher=SimpleNamespace(push_all=hung_push),
        jobs=SimpleNamespace(purge_completed=counted("purge")),
        fires=SimpleNamespace(purge_expired_tokens=counted("tokens")),
        reconciler=SimpleNamespace(reconcile=reconcile),
        startup=StartupState(done=True),
    )
    return cast(Services, services)


async def test_runs_are_resumed_and_started_while_the_nas_push_hangs(store: Store) -> None:
    calls: Counter[str] = Counter()
    loop = asyncio.create_task(maintenance_loop(fake_services(calls, store), interval=0.02))
    await asyncio.sleep(0.3)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert calls["push"] == 1  # still hanging in its first round
    assert calls["recover"] >= 5 and calls["queued"] >= 5 and calls["buffered"] >= 5
    assert calls["purge"] >= 5 and calls["tokens"] >= 5
    left = [t for t in asyncio.all_tasks() if (t.get_name() or "").startswith("maintenance:")]
    assert left == []  # every step's task was cancelled and awaited


async def test_each_step_has_its_cadence(store: Store) -> None:
    calls: Counter[str] = Counter()
    steps = {s.name: s.every for s in housekeeping_steps(fake_services(calls, store), 10.0)}
    assert steps["resume expired runs"] == steps["start queued runs"] == 10.0
    assert "periodic reconcile" not in steps  # 0: only on startup and on demand
    with_reconcile = housekeeping_steps(fake_services(calls, store, reconcile_every=600.0), 10.0)
    assert {s.name: s.every for s in with_reconcile}["periodic reconcile"] == 600.0


async def test_a_failing_step_is_logged_by_name_and_keeps_its_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rounds = 0

    async def flaky() -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise StoreUnavailable("OperationalError")
        if rounds == 2:
            raise RuntimeError("a bug")

    caplog.set_level(logging.WARNING, logger="app.maintenance")
    task = asyncio.create_task(run_step(Step("start queued runs", 0.01, flaky)))
    while rounds < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    logged = [(r.levelname, r.getMessage(), getattr(r, "step", None)) for r in caplog.records]
    assert logged[:2] == [
        ("WARNING", "maintenance: store unavailable", "start queued runs"),
        ("ERROR", "maintenance step failed", "start queued runs"),
    ]


@pytest_asyncio.fixture
async def other_store(database_url: str) -> AsyncIterator[Store]:
    """A second replica's store: its own engine on the same database."""
    other = Store.from_url(database_url)
    yield other
    await other.close()


def singleton_actions(services: Services, every: float) -> dict[str, Step]:
    return {s.name: s for s in housekeeping_steps(services, every) if s.name in SINGLETONS}


async def test_one_replica_runs_the_purges_and_the_reconcile_each_round(
    store: Store, other_store: Store
) -> None:
    """Two replicas, rounds interleaved under a manual clock: the first to start a step holds
    it, the other skips every round while the holder lives, and takes over once the holder
    stopped and its lease lapsed."""
    clock = ManualUtcClock(datetime(2030, 1, 1, 12, tzinfo=UTC))
    calls = {"a": Counter[str](), "b": Counter[str]()}
    every = 10.0
    a = singleton_actions(
        fake_services(calls["a"], store, node="a", clock=clock, reconcile_every=every), every
    )
    b = singleton_actions(
        fake_services(calls["b"], other_store, node="b", clock=clock, reconcile_every=every),
        every,
    )
    for _ in range(5):
        for replica in (a, b):
            for step in replica.values():
                await step.action()
            clock.advance(every / 2)
    assert calls["a"] == Counter(purge=5, tokens=5, reconcile=5)
    assert calls["b"] == Counter()

    # a stopped after its round at t0+40 s; its lease holds a round and a half, to t0+55 s
    for step in b.values():  # t0+50 s
        await step.action()
    assert calls["b"] == Counter()
    clock.advance(every)
    for step in b.values():
        await step.action()
    assert calls["b"] == Counter(purge=1, tokens=1, reconcile=1)


async def test_two_maintenance_loops_share_the_singleton_steps(
    store: Store, other_store: Store
) -> None:
    """Two replicas' maintenance loops side by side, on the wall clock: both resume and start
    runs; each purge and the reconcile is done by one of them only."""
    calls = {"a": Counter[str](), "b": Counter[str]()}
    loops = [
        asyncio.create_task(
            maintenance_loop(
                fake_services(calls[node], on, node=node, reconcile_every=0.05), interval=0.05
            )
        )
        for node, on in (("a", store), ("b", other_store))
    ]
    await asyncio.sleep(1.0)
    for loop in loops:
        loop.cancel()
    await asyncio.gather(*loops, return_exceptions=True)

    assert calls["a"]["recover"] >= 5 and calls["b"]["recover"] >= 5
    for step in ("purge", "tokens", "reconcile"):  # each on one replica, maybe not the same
        ran = sorted(node for node in calls if calls[node][step])
        assert len(ran) == 1 and calls[ran[0]][step] >= 5, (step, calls)


async def test_the_startup_reconcile_runs_on_every_replica_that_starts(store: Store) -> None:
    clock = ManualUtcClock(datetime(2030, 1, 1, 12, tzinfo=UTC))
    async with store.transaction() as tx:  # another replica holds the periodic reconcile
        assert await tx.leases.acquire("periodic reconcile", "b", clock(), clock())
    calls: Counter[str] = Counter()
    services = fake_services(calls, store, node="a", clock=clock, reconcile_every=10.0)
    services.startup.done = False

    await startup_reconcile(services)

    assert calls["reconcile"] == 1 and services.startup.done
