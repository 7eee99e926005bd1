"""Graceful drain inside the app (issue 9, part 5): once the drain begins, `/readyz` and fires
answer 503 at once; runs in flight get the grace, then are stopped and their leases released."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from app.domain.states import RunStatus
from app.services import DrainState
from tests.support.agent import Agent, RunningNas, run_agent
from tests.support.servers import wait_until

pytestmark = pytest.mark.asyncio

SLEEP_THEN_MARK = (
    "import sys, time; time.sleep(float(sys.argv[2])); open(sys.argv[1], 'w').write('done')"
)


def sleeper(out: Path, seconds: float) -> dict[str, object]:
    return {
        "type": "command",
        "argv": [sys.executable, "-c", SLEEP_THEN_MARK, str(out), str(seconds)],
    }


def drain_of(agent: Agent) -> DrainState:
    drain = agent.app.state.drain
    assert isinstance(drain, DrainState)
    return drain


async def test_readyz_is_503_draining_at_once(agent: Agent) -> None:
    assert (await agent.client.get("/readyz")).status_code == 200
    drain_of(agent).begin()
    response = await agent.client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": "draining"}
    assert (await agent.client.get("/healthz")).status_code == 200  # alive while draining


async def test_a_fire_while_draining_is_refused_with_retry_after_and_nothing_admitted(
    agent: Agent, tmp_path: Path
) -> None:
    job = await agent.create_job(schedule="in 1h", target=sleeper(tmp_path / "ran", 0))
    drain_of(agent).begin()
    calls = len(agent.faults.calls)
    response = await agent.fire(job["id"], job["next_run_at"])
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == str(agent.settings.retry_after_seconds)
    assert response.json()["error"] == "draining"
    assert await agent.runs(job["id"]) == []  # nothing admitted
    assert len(agent.faults.calls) == calls  # nothing armed at NAS


async def test_the_drain_lets_a_run_finish_within_the_grace(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    out = tmp_path / "ran"
    async with run_agent(
        database_url, nas, shutdown_grace_seconds=10, drain_settle_seconds=0
    ) as agent:
        job = await agent.create_job(schedule="in 1h", target=sleeper(out, 0.5))
        assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
        drain = drain_of(agent)
        drain.begin()

        async def finished() -> bool:
            return drain.finished

        await wait_until(finished, timeout=10, what="the drain to finish")
        assert out.read_text() == "done"
        [run] = await agent.runs(job["id"])
        assert run["status"] == RunStatus.SUCCEEDED
        assert drain.elapsed() < 5


async def test_a_run_still_going_after_the_grace_is_stopped_and_its_lease_released(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    out = tmp_path / "ran"
    grace = 0.5
    async with run_agent(
        database_url, nas, shutdown_grace_seconds=grace, drain_settle_seconds=0
    ) as agent:
        job = await agent.create_job(schedule="in 1h", target=sleeper(out, 30))
        assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
        drain = drain_of(agent)
        started = time.monotonic()
        drain.begin()

        async def finished() -> bool:
            return drain.finished

        await wait_until(finished, timeout=10, what="the drain to finish")
        assert grace <= time.monotonic() - started < grace + 5
        assert agent.services.executor.active == 0
        async with agent.services.store.transaction() as tx:
            [fire] = await tx.fires.list_for_job(job["id"])
        assert fire.status == RunStatus.RUNNING
        assert fire.lease_owner == agent.settings.node_id
        assert fire.lease_expires_at is None  # released: any replica takes it over at once
        assert not out.exists()  # the command was stopped, not left to finish
