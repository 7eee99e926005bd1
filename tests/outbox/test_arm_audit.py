"""The arm audit, against a real NAS emulator on loopback: after fires are answered, a job whose
next arm NAS lost is re-provisioned; one NAS `list` covers every fire of a window."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support.agent import Agent, RunningNas, run_agent

pytestmark = pytest.mark.asyncio


async def hourly(agent: Agent, tmp_path: Path, name: str = "hourly") -> dict[str, Any]:
    target = {"type": "command", "argv": [sys.executable, "-c", "pass"]}
    return await agent.create_job(name=name, schedule="every 1h", target=target)


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def audited(database_url: str, nas: RunningNas) -> AsyncIterator[Agent]:
    async with run_agent(database_url, nas, arm_audit_delay_seconds=0.3) as running:
        yield running


async def test_an_arm_nas_dropped_after_the_answer_is_re_provisioned(
    audited: Agent, tmp_path: Path
) -> None:
    agent = audited
    job = await hourly(agent, tmp_path)
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    next_at = (await agent.job(job["id"]))["next_run_at"]
    assert (await agent.nas.armed()).get(job["id"]) == next_at
    await agent.nas.clear()  # NAS cleans up by job id after the 2xx: the new arm is gone

    async def repaired() -> bool:
        return agent.services.audit.counts.repaired > 0

    await wait_for(repaired)
    assert (await agent.nas.armed()).get(job["id"]) == next_at
    counts = agent.services.audit.counts
    assert counts.repaired == 1
    assert counts.repaired_jobs == [job["id"]]
    await agent.idle()


async def test_one_list_call_covers_every_fire_of_the_window(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    async with run_agent(database_url, nas, arm_audit_delay_seconds=3) as agent:
        await fires_of_one_window(agent, tmp_path)


async def fires_of_one_window(agent: Agent, tmp_path: Path) -> None:
    jobs = [await hourly(agent, tmp_path, f"job-{n}") for n in range(3)]
    agent.faults.calls.clear()
    for n, job in enumerate(jobs):
        token = agent.nas.mint(jti=f"delivery-{n}")
        assert (await agent.fire(job["id"], job["next_run_at"], token=token)).status_code == 202

    async def audited_all() -> bool:
        return agent.services.audit.counts.checked >= 3

    await wait_for(audited_all)
    assert agent.faults.calls.count("list") == 1
    assert agent.services.audit.counts.repaired == 0  # every arm was there
    await agent.idle()


async def test_an_arm_at_the_wanted_time_is_left_alone(agent: Agent, tmp_path: Path) -> None:
    job = await hourly(agent, tmp_path)
    agent.faults.calls.clear()
    assert await agent.services.audit.audit([job["id"]]) == []
    assert agent.faults.calls == ["list"]


async def test_an_arm_at_another_time_is_replaced(agent: Agent, tmp_path: Path) -> None:
    job = await hourly(agent, tmp_path)
    async with agent.nas.client() as nas:
        moved = await nas.post(
            "/api/agent-cron/provision",
            json={
                "job_id": job["id"],
                "fire_at": "2031-01-01T00:00:00+00:00",
                "agent_callback_url": "http://127.0.0.1:9",
                "dedup_key": f"{job['id']}:2031-01-01T00:00:00+00:00",
            },
        )
        assert moved.status_code < 300
    assert await agent.services.audit.audit([job["id"]]) == [job["id"]]
    assert (await agent.nas.armed())[job["id"]] == job["next_run_at"]


async def test_without_list_each_fired_job_is_re_provisioned_once(
    agent: Agent, tmp_path: Path
) -> None:
    job = await hourly(agent, tmp_path)
    await agent.nas.clear()
    agent.faults.mode = "no-list"
    agent.faults.calls.clear()
    assert await agent.services.audit.audit([job["id"]]) == [job["id"]]
    assert agent.faults.calls == ["list", "provision"]
    assert (await agent.nas.armed())[job["id"]] == job["next_run_at"]


async def test_a_failed_list_keeps_the_jobs_for_the_next_audit(
    agent: Agent, tmp_path: Path
) -> None:
    job = await hourly(agent, tmp_path)
    await agent.nas.clear()
    agent.faults.mode = "503"
    audit = agent.services.audit
    assert await audit.audit([job["id"]]) == []
    assert audit.counts.list_errors == 1
    assert audit.waiting == 1
    agent.faults.mode = None
    assert await audit.audit([job["id"]]) == [job["id"]]
    assert (await agent.nas.armed())[job["id"]] == job["next_run_at"]


async def test_paused_jobs_and_pending_operations_are_not_touched(
    agent: Agent, tmp_path: Path
) -> None:
    job = await hourly(agent, tmp_path)
    response = await agent.client.post(f"/api/jobs/{job['id']}/pause", headers=agent.admin_headers)
    assert response.status_code == 200
    agent.faults.calls.clear()
    assert await agent.services.audit.audit([job["id"]]) == []
    assert "provision" not in agent.faults.calls
