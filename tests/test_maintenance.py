"""Housekeeping steps are independent: each has its own loop and cadence, so resuming runs and
starting queued ones never wait behind a hung NAS push; a failing step is logged with its name
and keeps its loop; cancelling the maintenance task cancels and awaits every step."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from types import SimpleNamespace
from typing import cast

import pytest

from app.maintenance import Step, housekeeping_steps, maintenance_loop, run_step
from app.services import Services, StartupState
from app.settings import Settings
from app.store import StoreUnavailable

pytestmark = pytest.mark.asyncio


def fake_services(calls: Counter[str], *, reconcile_every: float = 0.0) -> Services:
    """Services whose housekeeping calls are counted; the NAS push hangs for good."""

    def counted(name: str) -> object:
        async def step(*_args: object, **_kwargs: object) -> int:
            calls[name] += 1
            return 0

        return step

    async def hung_push(**_kwargs: object) -> None:
        calls["push"] += 1
        await asyncio.Event().wait()

    settings = SimpleNamespace(
        completed_retention_seconds=60,
        reconcile_concurrency=2,
        reconcile_interval_seconds=reconcile_every,
    )
    services = SimpleNamespace(
        settings=cast(Settings, settings),
        executor=SimpleNamespace(
            recover_expired=counted("recover"),
            start_queued=counted("queued"),
            start_stranded_buffered=counted("buffered"),
        ),
        pusher=SimpleNamespace(push_all=hung_push),
        jobs=SimpleNamespace(purge_completed=counted("purge")),
        fires=SimpleNamespace(purge_expired_tokens=counted("tokens")),
        reconciler=SimpleNamespace(reconcile=counted("reconcile")),
        startup=StartupState(done=True),
    )
    return cast(Services, services)


async def test_runs_are_resumed_and_started_while_the_nas_push_hangs() -> None:
    calls: Counter[str] = Counter()
    loop = asyncio.create_task(maintenance_loop(fake_services(calls), interval=0.02))
    await asyncio.sleep(0.3)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert calls["push"] == 1  # still hanging in its first round
    assert calls["recover"] >= 5 and calls["queued"] >= 5 and calls["buffered"] >= 5
    assert calls["purge"] >= 5 and calls["tokens"] >= 5
    left = [t for t in asyncio.all_tasks() if (t.get_name() or "").startswith("maintenance:")]
    assert left == []  # every step's task was cancelled and awaited


async def test_each_step_has_its_cadence() -> None:
    calls: Counter[str] = Counter()
    steps = {s.name: s.every for s in housekeeping_steps(fake_services(calls), 10.0)}
    assert steps["resume expired runs"] == steps["start queued runs"] == 10.0
    assert "periodic reconcile" not in steps  # 0: only on startup and on demand
    with_reconcile = housekeeping_steps(fake_services(calls, reconcile_every=600.0), 10.0)
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
