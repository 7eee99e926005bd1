"""Fires that carry less than `{job_id, fire_at}`, and fire tokens that are good for one fire.

Through the ASGI app, against a real NAS emulator on loopback, with real signed tokens."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.support import ManualUtcClock
from tests.support.agent import Agent, RunningNas, run_agent

pytestmark = pytest.mark.asyncio

TOUCH = "import sys; open(sys.argv[1], 'a').write('ran\\n')"
EARLY = 4000  # seconds: an `every 1h` job's first fire is due, its second is not


@pytest_asyncio.fixture
async def early_agent(database_url: str, nas: RunningNas) -> AsyncIterator[Agent]:
    async with run_agent(database_url, nas, early_fire_seconds=EARLY) as running:
        yield running


async def hourly(agent: Agent, tmp_path: Path) -> dict[str, Any]:
    target = {"type": "command", "argv": [sys.executable, "-c", TOUCH, str(tmp_path / "ran")]}
    return await agent.create_job(schedule="every 1h", target=target)  # names are unique


async def fire_body(agent: Agent, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    token = token if token is not None else agent.nas.mint()
    return await agent.client.post(
        "/api/cron/fire", json=body, headers={"Authorization": f"Bearer {token}"}
    )


async def test_a_body_without_fire_at_stands_for_the_due_next_fire(
    early_agent: Agent, tmp_path: Path
) -> None:
    agent = early_agent
    job = await hourly(agent, tmp_path)
    response = await fire_body(agent, {"job_id": job["id"]})
    assert response.status_code == 202, response.text
    assert response.json()["fire_at"] == job["next_run_at"]
    await agent.idle()
    [run] = await agent.runs(job["id"])
    assert run["fire_at"] == job["next_run_at"]
    assert run["key"] == f"{job['id']}:{job['next_run_at']}"
    moved = await agent.job(job["id"])
    assert moved["next_run_at"] > job["next_run_at"]
    assert (await agent.nas.armed())[job["id"]] == moved["next_run_at"]


async def test_a_body_without_fire_at_before_the_job_is_due_is_ignored_not_due(
    agent: Agent, tmp_path: Path
) -> None:
    job = await hourly(agent, tmp_path)  # due in an hour; the early window is 60 s
    response = await fire_body(agent, {"job_id": job["id"]})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ignored",
        "reason": "not_due",
        "job_id": job["id"],
        "fire_at": None,
    }
    assert await agent.runs(job["id"]) == []
    assert (await agent.job(job["id"]))["next_run_at"] == job["next_run_at"]


async def test_a_re_delivery_without_fire_at_after_admission_runs_nothing_more(
    early_agent: Agent, tmp_path: Path
) -> None:
    agent = early_agent
    job = await hourly(agent, tmp_path)
    assert (await fire_body(agent, {"job_id": job["id"]})).status_code == 202
    fresh = agent.nas.mint(jti="another-delivery")  # a fresh token, as NAS mints per delivery
    again = await fire_body(agent, {"job_id": job["id"]}, fresh)
    assert again.status_code == 200
    assert again.json()["reason"] == "not_due"
    await agent.idle()
    assert len(await agent.runs(job["id"])) == 1


async def test_the_same_token_and_body_again_is_the_ordinary_duplicate(
    early_agent: Agent, tmp_path: Path
) -> None:
    agent = early_agent
    job = await hourly(agent, tmp_path)
    token = agent.nas.mint()
    assert (await fire_body(agent, {"job_id": job["id"]}, token)).status_code == 202
    again = await fire_body(agent, {"job_id": job["id"]}, token)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "duplicate"
    assert again.json()["fire_at"] == job["next_run_at"]
    await agent.idle()
    assert len(await agent.runs(job["id"])) == 1


async def test_a_fire_at_claim_names_the_fire_when_the_body_does_not(
    agent: Agent, tmp_path: Path
) -> None:
    job = await hourly(agent, tmp_path)  # not due by the window: the signed claim decides
    token = agent.nas.mint(fire_at=job["next_run_at"])
    response = await fire_body(agent, {"job_id": job["id"]}, token)
    assert response.status_code == 202, response.text
    assert response.json()["fire_at"] == job["next_run_at"]
    token = agent.nas.mint(fire_at=job["next_run_at"])
    redelivered = await fire_body(agent, {"job_id": job["id"]}, token)
    assert redelivered.json()["status"] == "duplicate"


async def test_a_job_id_claim_that_disagrees_with_the_body_is_401(
    early_agent: Agent, tmp_path: Path
) -> None:
    agent = early_agent
    job = await hourly(agent, tmp_path)
    other_job = await fire_body(agent, {"job_id": job["id"]}, agent.nas.mint(job_id="another"))
    assert other_job.status_code == 401
    assert "job_id mismatch" in other_job.json()["detail"]
    assert await agent.runs(job["id"]) == []
    assert (await agent.job(job["id"]))["next_run_at"] == job["next_run_at"]


async def test_a_fire_at_claim_for_another_time_is_that_fire_stale(
    early_agent: Agent, tmp_path: Path
) -> None:
    """The claim is signed by NAS: the body stands for it, and the fire table answers it (a 401
    would only make NAS re-deliver it for ever)."""
    agent = early_agent
    job = await hourly(agent, tmp_path)
    earlier = datetime.fromisoformat(job["next_run_at"]) - timedelta(hours=3)
    response = await fire_body(agent, {"job_id": job["id"]}, agent.nas.mint(fire_at=earlier))
    assert response.status_code == 200
    assert response.json()["reason"] == "stale"
    assert response.json()["fire_at"] == earlier.isoformat()
    assert await agent.runs(job["id"]) == []
    assert (await agent.job(job["id"]))["next_run_at"] == job["next_run_at"]


async def test_a_re_delivery_right_after_admission_never_runs_the_next_slot_early(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    """With an early window wider than the job's period, the next slot is "due" at once; a
    delivery coming before the midpoint since the last admission is a re-delivery, not it."""
    async with run_agent(database_url, nas, early_fire_seconds=3 * 3600) as agent:
        job = await hourly(agent, tmp_path)
        assert (await fire_body(agent, {"job_id": job["id"]})).status_code == 202
        again = await fire_body(agent, {"job_id": job["id"]})
        assert again.status_code == 200, again.text
        assert again.json()["reason"] == "not_due"
        await agent.idle()
        assert len(await agent.runs(job["id"])) == 1


@pytest.mark.parametrize(
    "spelling",
    [
        lambda t: t.isoformat().replace("+00:00", "Z"),
        lambda t: t.isoformat(),
        lambda t: t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        lambda t: t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000+00:00"),
        lambda t: t.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(),
    ],
    ids=["Z", "+00:00", "millis-Z", "micros", "+05:30"],
)
async def test_every_spelling_of_fire_at_is_the_same_fire(
    agent: Agent, tmp_path: Path, spelling: Any
) -> None:
    job = await hourly(agent, tmp_path)
    at = datetime.fromisoformat(job["next_run_at"])
    first = await agent.fire(job["id"], spelling(at))
    assert first.status_code == 202, first.text
    canonical = await agent.fire(job["id"], job["next_run_at"])
    assert canonical.json()["status"] == "duplicate"
    await agent.idle()
    assert [r["key"] for r in await agent.runs(job["id"])] == [f"{job['id']}:{job['next_run_at']}"]


# -- a fire token is good for one fire -------------------------------------------------------


async def test_a_token_presented_again_for_another_job_is_401(agent: Agent, tmp_path: Path) -> None:
    first = await hourly(agent, tmp_path)
    second = await hourly(agent, tmp_path)
    token = agent.nas.mint()
    assert (await agent.fire(first["id"], first["next_run_at"], token=token)).status_code == 202
    replay = await agent.fire(second["id"], second["next_run_at"], token=token)
    assert replay.status_code == 401
    assert "already used" in replay.json()["detail"]
    assert await agent.runs(second["id"]) == []
    assert (await agent.job(second["id"]))["next_run_at"] == second["next_run_at"]
    same = await agent.fire(first["id"], first["next_run_at"], token=token)
    assert same.status_code == 200
    assert same.json()["status"] == "duplicate"


async def test_a_token_presented_again_for_another_time_is_401(
    agent: Agent, tmp_path: Path
) -> None:
    job = await hourly(agent, tmp_path)
    token = agent.nas.mint()
    stale = datetime.fromisoformat(job["next_run_at"]) - timedelta(hours=5)
    assert (await agent.fire(job["id"], stale, token=token)).json()["reason"] == "stale"
    replay = await agent.fire(job["id"], job["next_run_at"], token=token)
    assert replay.status_code == 401
    assert await agent.runs(job["id"]) == []
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202


async def test_a_refused_token_binds_nothing(agent: Agent, tmp_path: Path) -> None:
    job = await hourly(agent, tmp_path)
    token = agent.nas.mint(job_id="another")
    assert (await agent.fire(job["id"], job["next_run_at"], token=token)).status_code == 401
    good = agent.nas.mint()
    assert (await agent.fire(job["id"], job["next_run_at"], token=good)).status_code == 202


async def test_token_bindings_are_shared_through_the_store(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    token = nas.mint()
    async with run_agent(database_url, nas, node_id="replica-a") as a:
        first = await hourly(a, tmp_path)
        second = await hourly(a, tmp_path)
        assert (await a.fire(first["id"], first["next_run_at"], token=token)).status_code == 202
        await a.idle()
    async with run_agent(database_url, nas, node_id="replica-b") as b:
        replay = await b.fire(second["id"], second["next_run_at"], token=token)
        assert replay.status_code == 401


async def test_a_token_that_names_no_fire_may_serve_a_burst_of_due_fires(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    """RS256 signatures are deterministic: NAS's tokens for two jobs due in the same second
    are the same bytes when they carry no jti or fire claims. Both fires are admitted; the
    token still cannot run a job early."""
    async with run_agent(database_url, nas) as now_agent:
        first = await hourly(now_agent, tmp_path)
        second = await hourly(now_agent, tmp_path)
        early = await hourly(now_agent, tmp_path)
    later = ManualUtcClock(datetime.fromisoformat(second["next_run_at"]) + timedelta(seconds=1))
    async with run_agent(database_url, nas, clock=later) as agent:
        token = agent.nas.mint(jti=None)
        assert (await agent.fire(first["id"], first["next_run_at"], token=token)).status_code == 202
        burst = await agent.fire(second["id"], second["next_run_at"], token=token)
        assert burst.status_code == 202, burst.text
        too_early = datetime.fromisoformat(early["next_run_at"]) + timedelta(hours=1)
        replay = await agent.fire(early["id"], too_early, token=token)
        assert replay.status_code == 401
        await agent.idle()


async def test_bindings_are_forgotten_once_their_token_expired(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    clock = ManualUtcClock(datetime.now(UTC))
    async with run_agent(database_url, nas, clock=clock) as agent:
        job = await hourly(agent, tmp_path)
        assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
        await agent.idle()
        assert await agent.services.fires.purge_expired_tokens() == 0  # still verifies
        clock.advance(90 + agent.settings.jwt_leeway_seconds + 1)
        assert await agent.services.fires.purge_expired_tokens() == 1
