"""Late, missed, overlapping and manual fires, through the HTTP API (issue: time semantics)."""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support.agent import Agent, RunningNas, run_agent
from tests.support.servers import wait_until

pytestmark = pytest.mark.asyncio

# Appends its fire time to a file, then waits until the gate file exists.
GATED = (
    "import os, sys, time\n"
    "open(sys.argv[1], 'a').write(os.environ['CHRONOS_DEDUP_KEY'] + '\\n')\n"
    "while not os.path.exists(sys.argv[2]):\n"
    "    time.sleep(0.02)\n"
)
APPEND = "import os, sys; open(sys.argv[1], 'a').write(os.environ['CHRONOS_DEDUP_KEY'] + '\\n')"


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest_asyncio.fixture
async def agent(database_url: str, nas: RunningNas, clock: Clock) -> AsyncIterator[Agent]:
    async with run_agent(database_url, nas, clock=clock) as running_agent:
        yield running_agent


def gated(tmp_path: Path) -> dict[str, Any]:
    return {
        "type": "command",
        "argv": [sys.executable, "-c", GATED, str(tmp_path / "runs.txt"), str(tmp_path / "gate")],
        "timeout_seconds": 30,
    }


def appending(tmp_path: Path) -> dict[str, Any]:
    return {"type": "command", "argv": [sys.executable, "-c", APPEND, str(tmp_path / "runs.txt")]}


def lines(tmp_path: Path) -> list[str]:
    path = tmp_path / "runs.txt"
    return path.read_text().splitlines() if path.exists() else []


async def statuses(agent: Agent, job_id: str) -> list[str]:
    return [r["status"] for r in reversed(await agent.runs(job_id))]


async def fire_next(agent: Agent, job_id: str) -> Any:
    job = await agent.job(job_id)
    return await agent.fire(job_id, job["next_run_at"])


# -- misfire grace -------------------------------------------------------------------------


async def test_fire_later_than_its_grace_is_missed_not_run_and_the_next_is_armed(
    agent: Agent, clock: Clock, tmp_path: Path
) -> None:
    job = await agent.create_job(
        schedule="every 1h", target=appending(tmp_path), misfire_grace_seconds=60
    )
    assert job["misfire_grace_seconds"] == 60
    clock.now = datetime.fromisoformat(job["next_run_at"]) + timedelta(seconds=61)
    response = await agent.fire(job["id"], job["next_run_at"])
    assert response.status_code == 200
    assert response.json()["status"] == "missed"
    await agent.idle()
    assert lines(tmp_path) == []
    [run] = await agent.runs(job["id"])
    assert run["status"] == "missed" and run["fire_at"] == job["next_run_at"]
    after = await agent.job(job["id"])
    assert datetime.fromisoformat(after["next_run_at"]) > clock.now
    assert (await agent.nas.armed())[job["id"]] == after["next_run_at"]
    # A re-delivery of the missed fire is a duplicate carrying its status.
    again = await agent.fire(job["id"], job["next_run_at"])
    assert again.json()["status"] == "duplicate" and again.json()["run_status"] == "missed"


async def test_fire_within_its_grace_runs(agent: Agent, clock: Clock, tmp_path: Path) -> None:
    job = await agent.create_job(
        schedule="every 1h", target=appending(tmp_path), misfire_grace_seconds=60
    )
    clock.now = datetime.fromisoformat(job["next_run_at"]) + timedelta(seconds=59)
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    assert len(lines(tmp_path)) == 1


async def test_without_grace_a_very_late_fire_still_runs(
    agent: Agent, clock: Clock, tmp_path: Path
) -> None:
    job = await agent.create_job(schedule="every 1h", target=appending(tmp_path))
    clock.now = datetime.fromisoformat(job["next_run_at"]) + timedelta(minutes=50)
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    assert len(lines(tmp_path)) == 1


# -- overlap -------------------------------------------------------------------------------


async def test_overlap_skip_records_the_fire_as_skipped_and_rearms(
    agent: Agent, tmp_path: Path
) -> None:
    job = await agent.create_job(schedule="every 1h", target=gated(tmp_path))
    assert job["overlap"] == "skip"
    assert (await fire_next(agent, job["id"])).status_code == 202
    await wait_until(lambda: _async(len(lines(tmp_path)) == 1), what="first run started")
    second = await fire_next(agent, job["id"])
    assert second.status_code == 200
    assert second.json()["status"] == "skipped"
    current = await agent.job(job["id"])
    assert (await agent.nas.armed())[job["id"]] == current["next_run_at"]
    (tmp_path / "gate").touch()
    await agent.idle()
    assert await statuses(agent, job["id"]) == ["succeeded", "skipped"]
    assert len(lines(tmp_path)) == 1


async def test_overlap_allow_runs_concurrently(agent: Agent, tmp_path: Path) -> None:
    job = await agent.create_job(schedule="every 1h", target=gated(tmp_path), overlap="allow")
    assert (await fire_next(agent, job["id"])).status_code == 202
    assert (await fire_next(agent, job["id"])).status_code == 202
    await wait_until(lambda: _async(len(lines(tmp_path)) == 2), what="two runs at once")
    assert await statuses(agent, job["id"]) == ["running", "running"]
    (tmp_path / "gate").touch()
    await agent.idle()
    assert await statuses(agent, job["id"]) == ["succeeded", "succeeded"]


async def test_overlap_buffer_one_runs_once_after_the_current_run(
    agent: Agent, tmp_path: Path
) -> None:
    job = await agent.create_job(schedule="every 1h", target=gated(tmp_path), overlap="buffer_one")
    assert (await fire_next(agent, job["id"])).status_code == 202
    await wait_until(lambda: _async(len(lines(tmp_path)) == 1), what="first run started")
    buffered = await fire_next(agent, job["id"])
    assert buffered.status_code == 202 and buffered.json()["status"] == "buffered"
    third = await fire_next(agent, job["id"])  # one is buffered already: skipped
    assert third.status_code == 200 and third.json()["status"] == "skipped"
    assert await statuses(agent, job["id"]) == ["running", "buffered", "skipped"]
    assert len(lines(tmp_path)) == 1

    (tmp_path / "gate").touch()
    await wait_until(lambda: _async(len(lines(tmp_path)) == 2), what="the buffered run")
    await agent.idle()
    await agent.idle()
    runs = list(reversed(await agent.runs(job["id"])))
    assert [r["status"] for r in runs] == ["succeeded", "succeeded", "skipped"]
    assert runs[1]["started_at"] >= runs[0]["finished_at"]


# -- catch-up on reconcile -------------------------------------------------------------------


async def test_catchup_run_once_coalesces_missed_slots_and_runs_once(
    agent: Agent, clock: Clock, tmp_path: Path
) -> None:
    job = await agent.create_job(schedule="every 1h", target=appending(tmp_path))
    assert job["catchup"] == "run_once"
    await agent.nas.clear()  # NAS lost the arm; the agent was down for three slots
    clock.now = datetime.fromisoformat(job["next_run_at"]) + timedelta(hours=2, minutes=30)
    report = (await agent.client.post("/api/reconcile", headers=agent.admin_headers)).json()
    assert job["id"] in report["missed"]
    await agent.idle()
    runs = await agent.runs(job["id"])
    missed = [r for r in runs if r["status"] == "missed"]
    caught_up = [r for r in runs if r["kind"] == "catchup"]
    assert len(missed) == 1 and missed[0]["count"] == 3
    assert missed[0]["fire_at"] == job["next_run_at"]
    assert len(caught_up) == 1 and caught_up[0]["status"] == "succeeded"
    assert len(lines(tmp_path)) == 1
    after = await agent.job(job["id"])
    expected = datetime.fromisoformat(job["next_run_at"]) + timedelta(hours=3)
    assert datetime.fromisoformat(after["next_run_at"]) == expected
    assert (await agent.nas.armed())[job["id"]] == after["next_run_at"]


async def test_catchup_skip_records_missed_and_runs_nothing(
    agent: Agent, clock: Clock, tmp_path: Path
) -> None:
    job = await agent.create_job(schedule="every 1h", target=appending(tmp_path), catchup="skip")
    await agent.nas.clear()
    clock.now = datetime.fromisoformat(job["next_run_at"]) + timedelta(hours=1, minutes=1)
    await agent.client.post("/api/reconcile", headers=agent.admin_headers)
    await agent.idle()
    runs = await agent.runs(job["id"])
    assert [(r["status"], r["count"]) for r in runs] == [("missed", 2)]
    assert lines(tmp_path) == []
    after = await agent.job(job["id"])
    assert datetime.fromisoformat(after["next_run_at"]) > clock.now
    assert job["id"] in await agent.nas.armed()


# -- manual runs -----------------------------------------------------------------------------


async def test_manual_runs_have_their_own_keys_and_do_not_count_toward_repeat(
    agent: Agent, tmp_path: Path
) -> None:
    job = await agent.create_job(schedule="every 1h", target=appending(tmp_path), repeat=1)
    for _ in range(2):
        response = await agent.client.post(
            f"/api/jobs/{job['id']}/trigger", headers=agent.admin_headers
        )
        assert response.status_code == 202
        assert response.json()["key"].startswith("manual:")
        await agent.idle()
    current = await agent.job(job["id"])
    assert current["state"] == "scheduled"
    assert current["next_run_at"] == job["next_run_at"]
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    done = await agent.job(job["id"])
    assert done["state"] == "completed" and done["next_run_at"] is None
    assert job["id"] not in await agent.nas.armed()
    keys = [r["key"] for r in await agent.runs(job["id"])]
    assert sum(k.startswith("manual:") for k in keys) == 2
    assert lines(tmp_path)[-1] == f"{job['id']}:{job['next_run_at']}"


async def test_manual_run_honours_the_overlap_policy(agent: Agent, tmp_path: Path) -> None:
    job = await agent.create_job(schedule="every 1h", target=gated(tmp_path))
    first = await agent.client.post(f"/api/jobs/{job['id']}/trigger", headers=agent.admin_headers)
    assert first.json()["status"] == "running"
    await wait_until(lambda: _async(len(lines(tmp_path)) == 1), what="manual run started")
    second = await agent.client.post(f"/api/jobs/{job['id']}/trigger", headers=agent.admin_headers)
    assert second.status_code == 200
    assert second.json()["status"] == "skipped" and second.json()["key"].startswith("manual:")
    # The scheduled fire is skipped too while the manual run goes on.
    assert (await fire_next(agent, job["id"])).json()["status"] == "skipped"
    (tmp_path / "gate").touch()
    await agent.idle()


# -- pause, resume, edit -----------------------------------------------------------------------


async def test_resume_of_a_passed_one_shot_with_skip_is_409_and_changes_nothing(
    agent: Agent, clock: Clock, tmp_path: Path
) -> None:
    job = await agent.create_job(schedule="in 10m", target=appending(tmp_path), catchup="skip")
    await agent.client.post(f"/api/jobs/{job['id']}/pause", headers=agent.admin_headers)
    assert job["id"] not in await agent.nas.armed()
    clock.advance(minutes=11)
    response = await agent.client.post(f"/api/jobs/{job['id']}/resume", headers=agent.admin_headers)
    assert response.status_code == 409
    assert "passed" in response.json()["detail"]
    await agent.idle()
    after = await agent.job(job["id"])
    assert after["state"] == "paused"
    assert await agent.runs(job["id"]) == [] and lines(tmp_path) == []
    assert job["id"] not in await agent.nas.armed()


async def test_resume_of_a_passed_one_shot_with_run_once_runs_it_now(
    agent: Agent, clock: Clock, tmp_path: Path
) -> None:
    job = await agent.create_job(schedule="in 10m", target=appending(tmp_path))
    await agent.client.post(f"/api/jobs/{job['id']}/pause", headers=agent.admin_headers)
    clock.advance(minutes=11)
    response = await agent.client.post(f"/api/jobs/{job['id']}/resume", headers=agent.admin_headers)
    assert response.status_code == 200
    await agent.idle()
    assert len(lines(tmp_path)) == 1
    assert (await agent.job(job["id"]))["state"] == "completed"


async def test_resume_of_an_interval_computes_the_next_fire_from_now(
    agent: Agent, clock: Clock, tmp_path: Path
) -> None:
    job = await agent.create_job(schedule="every 10m", target=appending(tmp_path))
    await agent.client.post(f"/api/jobs/{job['id']}/pause", headers=agent.admin_headers)
    clock.advance(hours=1, seconds=5)
    resumed = await agent.client.post(f"/api/jobs/{job['id']}/resume", headers=agent.admin_headers)
    assert resumed.status_code == 200
    next_run_at = datetime.fromisoformat(resumed.json()["next_run_at"])
    assert clock.now < next_run_at <= clock.now + timedelta(minutes=10)
    assert (await agent.nas.armed())[job["id"]] == resumed.json()["next_run_at"]


async def test_editing_the_schedule_rearms_and_the_old_time_is_stale(
    agent: Agent, tmp_path: Path
) -> None:
    job = await agent.create_job(schedule="every 1h", target=appending(tmp_path))
    renamed = await agent.client.patch(
        f"/api/jobs/{job['id']}", json={"name": "renamed"}, headers=agent.admin_headers
    )
    assert renamed.json()["next_run_at"] == job["next_run_at"]
    edited = await agent.client.patch(
        f"/api/jobs/{job['id']}", json={"schedule": "every 2h"}, headers=agent.admin_headers
    )
    assert edited.status_code == 200
    new_next = edited.json()["next_run_at"]
    assert new_next != job["next_run_at"]
    assert (await agent.nas.armed())[job["id"]] == new_next
    old = await agent.fire(job["id"], job["next_run_at"])
    assert old.json()["reason"] == "stale"


# -- repeat, retention, preview ----------------------------------------------------------------


async def test_repeat_completes_after_n_runs_and_arms_nothing(agent: Agent, tmp_path: Path) -> None:
    job = await agent.create_job(schedule="every 1h", target=appending(tmp_path), repeat=2)
    assert (await fire_next(agent, job["id"])).status_code == 202
    await agent.idle()  # else the next fire finds the run going and is skipped (overlap)
    assert (await agent.job(job["id"]))["state"] == "scheduled"
    assert (await fire_next(agent, job["id"])).status_code == 202
    await agent.idle()
    done = await agent.job(job["id"])
    assert done["state"] == "completed" and done["next_run_at"] is None
    assert done["runs_started"] == 2
    assert job["id"] not in await agent.nas.armed()


async def test_completed_jobs_stay_readable_until_the_retention_passes(
    agent: Agent, clock: Clock, tmp_path: Path
) -> None:
    job = await agent.create_job(schedule="in 1h", target=appending(tmp_path))
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    retention = timedelta(days=7)
    assert await agent.services.jobs.purge_completed(retention) == 0
    assert len(await agent.runs(job["id"])) == 1
    clock.advance(days=7, seconds=1)
    assert await agent.services.jobs.purge_completed(retention) == 1
    gone = await agent.client.get(f"/api/jobs/{job['id']}", headers=agent.admin_headers)
    assert gone.status_code == 404


async def test_preview_lists_the_next_fires_from_next_run_at(agent: Agent, tmp_path: Path) -> None:
    job = await agent.create_job(
        schedule="30 2 * * *", timezone="America/New_York", target=appending(tmp_path)
    )
    plain = await agent.job(job["id"])
    assert "preview" not in plain
    response = await agent.client.get(
        f"/api/jobs/{job['id']}", params={"preview": 3}, headers=agent.admin_headers
    )
    preview = response.json()["preview"]
    assert len(preview) == 3 and preview[0] == job["next_run_at"]
    instants = [datetime.fromisoformat(p) for p in preview]
    assert all(b > a for a, b in itertools.pairwise(instants))
    assert all(p.endswith("+00:00") for p in preview)


async def _async(value: bool) -> bool:
    return value


async def test_a_late_fire_records_the_slots_it_stands_for(
    agent: Agent, clock: Clock, tmp_path: Path
) -> None:
    job = await agent.create_job(schedule="every 1h", target=appending(tmp_path))
    due = datetime.fromisoformat(job["next_run_at"])
    clock.now = due + timedelta(hours=2, minutes=30)
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    [run] = await agent.runs(job["id"])
    assert run["count"] == 3  # itself and the two slots that passed before it arrived
    after = await agent.job(job["id"])
    assert datetime.fromisoformat(after["next_run_at"]) == due + timedelta(hours=3)


async def test_a_run_that_loses_its_lease_is_stopped(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    async with run_agent(database_url, nas, lease_seconds=5) as agent:
        job = await agent.create_job(schedule="every 1h", target=gated(tmp_path))
        assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
        await wait_until(lambda: _async(len(lines(tmp_path)) == 1), what="the run started")
        store = agent.services.store
        async with store.transaction() as tx:
            [fire] = await tx.fires.list_for_job(job["id"])
            stolen = await tx.fires.take_over_lease(
                fire,
                owner="another-replica",
                lease_expires_at=clock_now() + timedelta(minutes=5),
                now=clock_now(),
            )
        assert stolen is not None
        # The renewer finds the lease gone within a third of the lease and stops the run.
        await agent.services.executor.wait_idle(timeout=10)
        assert agent.services.executor.active == 0
        async with store.transaction() as tx:
            [fire] = await tx.fires.list_for_job(job["id"])
        assert fire.status == "running" and fire.lease_owner == "another-replica"


def clock_now() -> datetime:
    return datetime.now(UTC)
