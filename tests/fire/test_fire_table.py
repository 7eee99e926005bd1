"""Every row of the fire table, through the ASGI app, against a real NAS emulator on loopback."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.agent import NAS_TOKEN, Agent, RunningNas, run_agent
from tests.support.keys import SigningKey

pytestmark = pytest.mark.asyncio

APPEND_LINE = "import os, sys; open(sys.argv[1], 'a').write(os.environ['CHRONOS_FIRE_AT'] + '\\n')"


def append_target(path: Path) -> dict[str, Any]:
    return {"type": "command", "argv": [sys.executable, "-c", APPEND_LINE, str(path)]}


async def hourly_job(agent: Agent, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return await agent.create_job(
        name="hourly", schedule="every 1h", target=append_target(tmp_path / "runs.txt"), **extra
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- 401 ---------------------------------------------------------------------------------


async def test_missing_token_is_401_and_changes_nothing(agent: Agent, tmp_path: Path) -> None:
    job = await hourly_job(agent, tmp_path)
    response = await agent.client.post(
        "/api/cron/fire", json={"job_id": job["id"], "fire_at": job["next_run_at"]}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert await agent.runs(job["id"]) == []
    assert (await agent.job(job["id"]))["next_run_at"] == job["next_run_at"]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "agent:someone-else"}, "wrong audience"),
        ({"iss": "https://evil.example"}, "wrong issuer"),
        ({"purpose": None}, "missing purpose"),
        ({"purpose": "login"}, "wrong purpose"),
        ({"exp": int(time.time()) - 120, "iat": int(time.time()) - 300}, "token expired"),
    ],
)
async def test_bad_tokens_are_401_and_change_nothing(
    agent: Agent, tmp_path: Path, overrides: dict[str, Any], reason: str
) -> None:
    job = await hourly_job(agent, tmp_path)
    response = await agent.fire(job["id"], job["next_run_at"], token=agent.nas.mint(**overrides))
    assert response.status_code == 401
    assert reason in response.json()["detail"]
    assert await agent.runs(job["id"]) == []
    assert (await agent.job(job["id"]))["next_run_at"] == job["next_run_at"]


async def test_token_signed_by_another_key_is_401(agent: Agent, tmp_path: Path) -> None:
    job = await hourly_job(agent, tmp_path)
    stranger = SigningKey.rsa(kid="not-nas")
    claims = {
        "aud": "agent:test-agent",
        "iss": agent.nas.url,
        "purpose": "cron_fire",
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
    }
    response = await agent.fire(job["id"], job["next_run_at"], token=stranger.mint(claims))
    assert response.status_code == 401
    assert await agent.runs(job["id"]) == []


async def test_token_bound_to_another_fire_is_401(agent: Agent, tmp_path: Path) -> None:
    job = await hourly_job(agent, tmp_path)
    other_time = datetime.fromisoformat(job["next_run_at"]) + timedelta(hours=1)
    token = agent.nas.mint(job_id=job["id"], fire_at=other_time)
    response = await agent.fire(job["id"], job["next_run_at"], token=token)
    assert response.status_code == 401
    assert "fire_at" in response.json()["detail"]
    token = agent.nas.mint(job_id="another-job", fire_at=job["next_run_at"])
    assert (await agent.fire(job["id"], job["next_run_at"], token=token)).status_code == 401
    assert await agent.runs(job["id"]) == []


async def test_token_bound_to_this_fire_is_accepted(agent: Agent, tmp_path: Path) -> None:
    job = await hourly_job(agent, tmp_path)
    as_z = job["next_run_at"].replace("+00:00", "Z")
    token = agent.nas.mint(job_id=job["id"], fire_at=as_z)
    response = await agent.fire(job["id"], job["next_run_at"], token=token)
    assert response.status_code == 202, response.text


# -- 400 / 413 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"fire_at": "2026-11-26T12:00:00+00:00"}', "job_id"),
        (b'{"job_id": "", "fire_at": "2026-11-26T12:00:00+00:00"}', "job_id"),
        (b'{"job_id": "abc", "fire_at": "yesterday"}', "fire_at"),
        (b'{"job_id": "abc", "fire_at": "2026-11-26T12:00:00"}', "fire_at"),
        (b'{"job_id": "abc", "fire_at": 1764158400}', "fire_at"),
        # Text no store can hold: a NUL (PostgreSQL refuses it), a lone surrogate (not Unicode).
        (b'{"job_id": "a\\u0000b", "fire_at": "2026-11-26T12:00:00+00:00"}', "job_id"),
        (b'{"job_id": "\\ud800", "fire_at": "2026-11-26T12:00:00+00:00"}', "job_id"),
        (b'{"job_id": "\\ud800"}', "job_id"),
        (b'{"job_id": "abc", "fire_at": "2026-11-26T12:00:00\\u0000"}', "fire_at"),
    ],
)
async def test_malformed_body_is_400_naming_the_field(
    agent: Agent, body: bytes, field: str
) -> None:
    response = await agent.client.post(
        "/api/cron/fire",
        content=body,
        headers={"Authorization": f"Bearer {agent.nas.mint()}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    payload = response.json()
    assert payload["error"] == "invalid_request"
    assert payload["detail"].startswith(field)
    jobs = await agent.client.get("/api/jobs", headers=agent.admin_headers)
    assert jobs.status_code == 200


async def test_malformed_body_with_a_bad_token_is_401(agent: Agent) -> None:
    response = await agent.client.post(
        "/api/cron/fire", content=b"not json", headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401


async def test_body_over_64_kib_is_413(agent: Agent) -> None:
    body = b'{"job_id": "' + b"x" * (64 * 1024) + b'", "fire_at": "2026-11-26T12:00:00+00:00"}'
    response = await agent.client.post(
        "/api/cron/fire", content=body, headers={"Authorization": f"Bearer {agent.nas.mint()}"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


# -- 200 ignored -------------------------------------------------------------------------


async def test_unknown_job_is_ignored_and_cancelled_at_nas(agent: Agent) -> None:
    # NAS still holds an arm for a job this agent no longer knows.
    fire_at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    async with agent.nas.client() as nas_client:
        response = await nas_client.post(
            "/api/agent-cron/provision",
            json={
                "job_id": "ghost",
                "fire_at": fire_at.isoformat(),
                "agent_callback_url": "http://127.0.0.1:9",
                "dedup_key": f"ghost:{fire_at.isoformat()}",
            },
        )
        assert response.status_code == 200
    assert "ghost" in await agent.nas.armed()

    response = await agent.fire("ghost", fire_at)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert response.json()["reason"] == "unknown_job"
    assert "ghost" not in await agent.nas.armed()
    assert "cancel" in agent.faults.calls


async def test_paused_job_is_ignored(agent: Agent, tmp_path: Path) -> None:
    job = await hourly_job(agent, tmp_path)
    paused = await agent.client.post(f"/api/jobs/{job['id']}/pause", headers=agent.admin_headers)
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    response = await agent.fire(job["id"], job["next_run_at"])
    assert response.status_code == 200
    assert response.json()["status"] == "ignored" and response.json()["reason"] == "paused"
    assert await agent.runs(job["id"]) == []
    assert lines(tmp_path / "runs.txt") == []


async def test_completed_job_is_ignored(agent: Agent, tmp_path: Path) -> None:
    job = await agent.create_job(schedule="in 1h", target=append_target(tmp_path / "runs.txt"))
    first = await agent.fire(job["id"], job["next_run_at"])
    assert first.status_code == 202
    await agent.idle()
    assert (await agent.job(job["id"]))["state"] == "completed"
    response = await agent.fire(job["id"], "2030-01-01T00:00:00+00:00")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ignored",
        "reason": "completed",
        "job_id": job["id"],
        "fire_at": "2030-01-01T00:00:00+00:00",
    }
    assert len(lines(tmp_path / "runs.txt")) == 1


async def test_fire_for_another_time_is_stale(agent: Agent, tmp_path: Path) -> None:
    job = await hourly_job(agent, tmp_path)
    stale_at = datetime.fromisoformat(job["next_run_at"]) - timedelta(hours=1)
    response = await agent.fire(job["id"], stale_at)
    assert response.status_code == 200
    assert response.json()["reason"] == "stale"
    assert await agent.runs(job["id"]) == []
    assert (await agent.job(job["id"]))["next_run_at"] == job["next_run_at"]


# -- 202 accepted / 200 duplicate ----------------------------------------------------------


async def test_new_fire_is_accepted_runs_once_and_arms_the_next(
    agent: Agent, tmp_path: Path
) -> None:
    job = await hourly_job(agent, tmp_path)
    assert (await agent.nas.armed())[job["id"]] == job["next_run_at"]

    response = await agent.fire(job["id"], job["next_run_at"])
    assert response.status_code == 202
    assert response.json() == {
        "status": "accepted",
        "job_id": job["id"],
        "fire_at": job["next_run_at"],
    }
    await agent.idle()

    assert lines(tmp_path / "runs.txt") == [job["next_run_at"]]
    after = await agent.job(job["id"])
    expected_next = (datetime.fromisoformat(job["next_run_at"]) + timedelta(hours=1)).isoformat()
    assert after["next_run_at"] == expected_next
    assert after["last_status"] == "succeeded"
    assert (await agent.nas.armed())[job["id"]] == expected_next
    [run] = await agent.runs(job["id"])
    assert run["status"] == "succeeded" and run["attempt"] == 1
    assert run["fire_at"] == job["next_run_at"] and run["finished_at"] is not None


async def test_fire_at_in_another_offset_is_the_same_instant(agent: Agent, tmp_path: Path) -> None:
    job = await hourly_job(agent, tmp_path)
    instant = datetime.fromisoformat(job["next_run_at"])
    tokyo = instant.astimezone(datetime.now().astimezone().tzinfo).astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Tokyo")
    )
    response = await agent.fire(job["id"], tokyo.isoformat())
    assert response.status_code == 202
    again = await agent.fire(job["id"], instant.isoformat().replace("+00:00", "Z"))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"


async def test_early_fire_for_next_run_at_is_the_right_fire(agent: Agent, tmp_path: Path) -> None:
    job = await hourly_job(agent, tmp_path)  # due in an hour by our clock
    response = await agent.fire(job["id"], job["next_run_at"])
    assert response.status_code == 202
    await agent.idle()
    assert lines(tmp_path / "runs.txt") == [job["next_run_at"]]


async def test_redelivery_is_a_duplicate_and_never_runs_twice(agent: Agent, tmp_path: Path) -> None:
    job = await hourly_job(agent, tmp_path)
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    for _ in range(3):
        response = await agent.fire(job["id"], job["next_run_at"])
        assert response.status_code == 200
        assert response.json()["status"] == "duplicate"
        assert response.json()["run_status"] == "succeeded"
    await agent.idle()
    assert len(lines(tmp_path / "runs.txt")) == 1


async def test_duplicate_wins_over_the_jobs_state_now(agent: Agent, tmp_path: Path) -> None:
    job = await hourly_job(agent, tmp_path)
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    await agent.client.post(f"/api/jobs/{job['id']}/pause", headers=agent.admin_headers)
    response = await agent.fire(job["id"], job["next_run_at"])
    assert response.json()["status"] == "duplicate"


async def test_concurrent_deliveries_admit_one(agent: Agent, tmp_path: Path) -> None:
    job = await hourly_job(agent, tmp_path)
    responses = await asyncio.gather(*(agent.fire(job["id"], job["next_run_at"]) for _ in range(6)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 200, 200, 200, 200, 202]
    # The losers see the winner's fire: duplicates, never "stale" or "completed".
    assert {r.json()["status"] for r in responses if r.status_code == 200} == {"duplicate"}
    await agent.idle()
    assert len(lines(tmp_path / "runs.txt")) == 1
    assert len(await agent.runs(job["id"])) == 1


async def test_running_duplicate_reports_running(agent: Agent, tmp_path: Path) -> None:
    job = await agent.create_job(
        schedule="every 1h",
        target={"type": "command", "argv": [sys.executable, "-c", "import time; time.sleep(1.5)"]},
    )
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    response = await agent.fire(job["id"], job["next_run_at"])
    assert response.json()["run_status"] == "running"
    await agent.idle()


# -- 503: NAS or store unavailable ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["down", "503"])
async def test_arm_failure_is_503_the_job_runs_once_and_redelivery_retries_the_arm(
    agent: Agent, tmp_path: Path, mode: str
) -> None:
    job = await hourly_job(agent, tmp_path)
    agent.faults.mode = mode
    response = await agent.fire(job["id"], job["next_run_at"])
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    await agent.idle()
    assert lines(tmp_path / "runs.txt") == [job["next_run_at"]]
    calls_before = len(agent.faults.calls)

    # NAS re-delivers while still failing: a duplicate, which retries the arm, and still 503.
    again = await agent.fire(job["id"], job["next_run_at"])
    assert again.status_code == 503
    assert len(agent.faults.calls) > calls_before
    assert (await agent.nas.armed())[job["id"]] == job["next_run_at"]  # the old arm only

    # NAS is back: the next re-delivery arms the next fire and ends delivery.
    agent.faults.mode = None
    final = await agent.fire(job["id"], job["next_run_at"])
    assert final.status_code == 200
    assert final.json()["status"] == "duplicate"
    next_run_at = (await agent.job(job["id"]))["next_run_at"]
    assert (await agent.nas.armed())[job["id"]] == next_run_at
    assert lines(tmp_path / "runs.txt") == [job["next_run_at"]]


async def test_nas_refusing_the_token_refreshes_it_once_then_keeps_the_arm_queued(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    token_file = tmp_path / "nas-token"
    token_file.write_text(NAS_TOKEN)
    async with run_agent(
        database_url, nas, nas_token=None, nas_token_file=str(token_file)
    ) as agent:
        job = await hourly_job(agent, tmp_path)
        token_file.write_text("revoked")  # rotated to a token NAS does not know
        calls_before = len(agent.faults.calls)
        response = await agent.fire(job["id"], job["next_run_at"])
        assert response.status_code == 503
        # Refused, refreshed (the file re-read), sent once more, refused again: no more calls.
        assert len(agent.faults.calls) == calls_before + 2
        shown = await agent.job(job["id"])
        assert shown["nas_pending"] == "provision"
        assert "credentials" in shown["nas_error"]
        assert "revoked" not in shown["nas_error"]

        token_file.write_text(NAS_TOKEN)  # the sidecar puts a good token back
        again = await agent.fire(job["id"], job["next_run_at"])
        assert again.status_code == 200
        assert again.json()["status"] == "duplicate"
        assert (await agent.nas.armed())[job["id"]] == shown["next_run_at"]
        await agent.idle()


async def test_store_unavailable_is_503_and_admits_nothing(agent: Agent, tmp_path: Path) -> None:
    job = await hourly_job(agent, tmp_path)
    store = agent.services.store
    working = store.engine
    store.engine = create_async_engine(
        "postgresql+asyncpg://nobody@127.0.0.1:1/none", connect_args={"timeout": 2}
    )
    try:
        response = await agent.fire(job["id"], job["next_run_at"])
        assert response.status_code == 503
        assert response.json()["error"] == "store_unavailable"
        assert int(response.headers["Retry-After"]) >= 1
        ready = await agent.client.get("/readyz")
        assert ready.status_code == 503 and "store" in ready.json()["reason"]
    finally:
        await store.engine.dispose()
        store.engine = working
    assert await agent.runs(job["id"]) == []
    # Once the store is back, the same delivery is admitted.
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()


async def test_a_duplicate_repairs_a_lost_next_arm(agent: Agent, tmp_path: Path) -> None:
    job = await hourly_job(agent, tmp_path)
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    next_run_at = (await agent.job(job["id"]))["next_run_at"]
    await agent.nas.clear()  # NAS lost the next arm (or an older send overwrote it)
    again = await agent.fire(job["id"], job["next_run_at"])
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert (await agent.nas.armed())[job["id"]] == next_run_at


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"job_id": "abc", "fire_at": "0001-01-01T00:00:00+01:00"}', "fire_at"),
        (b"[" * 100_00 + b"]" * 100_00, "body"),
    ],
)
async def test_pathological_bodies_are_400_with_a_token_and_401_without(
    agent: Agent, body: bytes, field: str
) -> None:
    response = await agent.client.post(
        "/api/cron/fire", content=body, headers={"Authorization": f"Bearer {agent.nas.mint()}"}
    )
    assert response.status_code == 400 and response.json()["detail"].startswith(field)
    forged = await agent.client.post(
        "/api/cron/fire", content=body, headers={"Authorization": "Bearer garbage"}
    )
    assert forged.status_code == 401
