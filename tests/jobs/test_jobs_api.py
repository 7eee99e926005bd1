"""The admin API for jobs, through the ASGI app, against a real NAS emulator on loopback."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from tests.support import ManualUtcClock
from tests.support.agent import Agent, RunningNas, run_agent

pytestmark = pytest.mark.asyncio

TRUE = {"type": "command", "argv": ["true"]}
JOB_FIELDS = {
    "id",
    "name",
    "schedule",
    "timezone",
    "target",
    "repeat",
    "state",
    "next_run_at",
    "last_run_at",
    "last_status",
}
RUN_FIELDS = {"fire_at", "status", "attempt", "started_at", "finished_at", "output", "error"}


@pytest.fixture
def clock() -> ManualUtcClock:
    """The agent's clock, from now: the NAS emulator (on the wall clock) sees its arms ahead."""
    return ManualUtcClock(datetime.now(UTC).replace(microsecond=0))


@pytest_asyncio.fixture
async def clocked_agent(
    database_url: str, nas: RunningNas, clock: ManualUtcClock
) -> AsyncIterator[Agent]:
    async with run_agent(database_url, nas, clock=clock) as running_agent:
        yield running_agent


def py(code: str) -> dict[str, Any]:
    return {"type": "command", "argv": [sys.executable, "-c", code]}


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def assert_utc_second(text: str) -> datetime:
    assert text.endswith("+00:00"), text
    value = instant(text)
    assert value.microsecond == 0, text
    return value


async def call(agent: Agent, method: str, path: str, **kwargs: Any) -> Any:
    return await agent.client.request(method, path, headers=agent.admin_headers, **kwargs)


async def list_jobs(agent: Agent) -> list[dict[str, Any]]:
    response = await call(agent, "GET", "/api/jobs?limit=1000")
    assert response.status_code == 200
    jobs: list[dict[str, Any]] = response.json()["jobs"]
    return jobs


# -- create ------------------------------------------------------------------------------


async def test_create_answers_201_with_the_job_armed_at_nas(agent: Agent) -> None:
    before = datetime.now(UTC)
    response = await call(
        agent,
        "POST",
        "/api/jobs",
        json={"name": "hourly", "schedule": "every 1h", "target": TRUE},
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job.keys() >= JOB_FIELDS
    assert len(job["id"]) >= 16
    assert job["name"] == "hourly"
    assert job["schedule"] == "every 1h"
    assert job["timezone"] == "UTC"
    assert job["target"]["type"] == "command" and job["target"]["argv"] == ["true"]
    assert job["repeat"] is None
    assert job["state"] == "scheduled"
    assert job["last_run_at"] is None
    assert job["last_status"] is None
    assert job["nas_pending"] is None
    next_run_at = assert_utc_second(job["next_run_at"])
    assert (
        before + timedelta(hours=1)
        <= next_run_at
        <= datetime.now(UTC) + timedelta(hours=1, seconds=1)
    )

    assert (await agent.nas.armed()) == {job["id"]: job["next_run_at"]}
    assert agent.faults.calls == ["provision"]  # that job only, not a full reconcile


async def test_create_defaults(agent: Agent) -> None:
    one_shot = await agent.create_job(schedule="in 90s", target=TRUE)
    assert one_shot["repeat"] == 1
    assert one_shot["name"]  # a generated name
    cron = await agent.create_job(
        schedule="0 9 * * *", timezone="Europe/Paris", target=TRUE, repeat=3
    )
    assert cron["repeat"] == 3 and cron["timezone"] == "Europe/Paris"
    at_nine = instant(cron["next_run_at"]).astimezone(ZoneInfo("Europe/Paris"))
    assert (at_nine.hour, at_nine.minute, at_nine.second) == (9, 0, 0)
    assert_utc_second(cron["next_run_at"])


async def test_a_cron_macro_is_kept_as_written_and_fires_as_its_fields(agent: Agent) -> None:
    job = await agent.create_job(schedule="@DAILY", timezone="Europe/Paris", target=TRUE)
    assert job["schedule"] == "@daily"
    at_midnight = instant(job["next_run_at"]).astimezone(ZoneInfo("Europe/Paris"))
    assert (at_midnight.hour, at_midnight.minute, at_midnight.second) == (0, 0, 0)
    assert (await agent.nas.armed()) == {job["id"]: job["next_run_at"]}


async def test_an_out_of_range_cron_field_is_400_naming_it_and_its_range(agent: Agent) -> None:
    response = await call(
        agent, "POST", "/api/jobs", json={"schedule": "0 0 32 * *", "target": TRUE}
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "detail": "schedule: invalid cron expression '0 0 32 * *': day-of-month: 32 is out of"
        " range 1-31",
    }
    assert await list_jobs(agent) == []


async def test_an_iso_one_shot_in_another_offset_is_stored_in_utc(agent: Agent) -> None:
    at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    job = await agent.create_job(
        schedule=at.astimezone(ZoneInfo("Asia/Tokyo")).isoformat(),
        target=TRUE,
    )
    assert job["next_run_at"] == at.isoformat()
    assert (await agent.nas.armed())[job["id"]] == at.isoformat()


PAST = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule": "every now and then"}, "schedule"),
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"schedule": "*/61 * * * *"}, "schedule"),
        ({"schedule": "0 22-2 * * *"}, "schedule"),
        ({"schedule": "@reboot"}, "schedule"),
        ({"schedule": ""}, "schedule"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"schedule": "0 9 * * *", "timezone": "Nowhere"}, "timezone"),
        ({"target": {"type": "ftp", "url": "ftp://x"}}, "target.type"),
        ({"target": {"type": "command"}}, "target.argv"),
        ({"target": {"type": "command", "argv": []}}, "target.argv"),
        ({"target": {"type": "http", "url": "not a url"}}, "target.url"),
        ({"schedule": PAST}, "schedule"),
        ({"repeat": 0}, "repeat"),
        ({"schedule": "in 1h", "repeat": 3}, "repeat"),
        ({"colour": "red"}, "colour"),
        ({"target": None}, "target"),
    ],
)
async def test_invalid_job_is_400_naming_the_field_and_creates_nothing(
    agent: Agent, change: dict[str, Any], field: str
) -> None:
    body = {"schedule": "every 1h", "target": TRUE, **change}
    response = await call(agent, "POST", "/api/jobs", json=body)
    assert response.status_code == 400, response.text
    payload = response.json()
    assert payload["error"] == "invalid_request"
    assert payload["detail"].startswith(f"{field}:"), payload["detail"]
    assert await list_jobs(agent) == []
    assert await agent.nas.armed() == {}
    assert agent.faults.calls == []


async def test_missing_fields_are_named(agent: Agent) -> None:
    response = await call(agent, "POST", "/api/jobs", json={})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "schedule" in detail and "target" in detail
    not_json = await agent.client.post(
        "/api/jobs",
        content=b"{nope",
        headers={**agent.admin_headers, "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400
    assert not_json.json()["error"] == "invalid_request"


# -- read --------------------------------------------------------------------------------


async def test_list_and_get(agent: Agent) -> None:
    first = await agent.create_job(name="a", schedule="every 1h", target=TRUE)
    second = await agent.create_job(name="b", schedule="every 2h", target=TRUE)
    jobs = await list_jobs(agent)
    assert [j["id"] for j in jobs] == [first["id"], second["id"]]
    assert all(j.keys() >= JOB_FIELDS for j in jobs)
    shown = await agent.job(second["id"])
    assert shown["name"] == "b" and shown["next_run_at"] == second["next_run_at"]


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"name": "x"}),
        ("DELETE", "", None),
        ("POST", "/pause", None),
        ("POST", "/resume", None),
        ("POST", "/trigger", None),
        ("GET", "/runs", None),
    ],
)
async def test_unknown_job_is_404_json(
    agent: Agent, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    response = await call(agent, method, f"/api/jobs/no-such-job{suffix}", json=body)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert "no-such-job" in response.json()["detail"]
    assert agent.faults.calls == []


# -- edit --------------------------------------------------------------------------------


async def test_patch_name_or_target_does_not_rearm(agent: Agent) -> None:
    job = await agent.create_job(name="before", schedule="every 1h", target=TRUE)
    calls = list(agent.faults.calls)
    response = await call(
        agent,
        "PATCH",
        f"/api/jobs/{job['id']}",
        json={"name": "after", "target": py("print('new')")},
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["name"] == "after"
    assert edited["target"]["argv"][-1] == "print('new')"
    assert edited["next_run_at"] == job["next_run_at"]
    assert agent.faults.calls == calls  # NAS was not called
    assert (await agent.nas.armed())[job["id"]] == job["next_run_at"]
    # The new target is what runs.
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    [run] = await agent.runs(job["id"])
    assert run["output"].strip() == "new"


async def test_patch_schedule_rearms_and_the_old_fire_is_stale(agent: Agent) -> None:
    job = await agent.create_job(schedule="every 1h", target=TRUE)
    response = await call(agent, "PATCH", f"/api/jobs/{job['id']}", json={"schedule": "every 3h"})
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["schedule"] == "every 3h"
    new_next = assert_utc_second(edited["next_run_at"])
    assert new_next - instant(job["next_run_at"]) > timedelta(hours=1, minutes=59)
    assert (await agent.nas.armed())[job["id"]] == edited["next_run_at"]
    assert edited["nas_pending"] is None

    old = await agent.fire(job["id"], job["next_run_at"])
    assert old.status_code == 200
    assert old.json()["status"] == "ignored" and old.json()["reason"] == "stale"
    assert await agent.runs(job["id"]) == []
    new = await agent.fire(job["id"], edited["next_run_at"])
    assert new.status_code == 202
    await agent.idle()


async def test_patch_with_an_invalid_schedule_is_400_and_changes_nothing(agent: Agent) -> None:
    job = await agent.create_job(schedule="every 1h", target=TRUE)
    for body, field in (
        ({"schedule": "whenever"}, "schedule"),
        ({"timezone": "Not/AZone"}, "timezone"),
        ({"repeat": 0}, "repeat"),
        ({"id": "mine"}, "id"),
    ):
        response = await call(agent, "PATCH", f"/api/jobs/{job['id']}", json=body)
        assert response.status_code == 400, body
        assert response.json()["detail"].startswith(f"{field}:"), response.json()["detail"]
    after = await agent.job(job["id"])
    assert (after["schedule"], after["timezone"], after["next_run_at"]) == (
        "every 1h",
        "UTC",
        job["next_run_at"],
    )
    assert (await agent.nas.armed())[job["id"]] == job["next_run_at"]


async def test_patch_schedule_of_a_paused_job_does_not_arm_it(agent: Agent) -> None:
    job = await agent.create_job(schedule="every 1h", target=TRUE)
    await call(agent, "POST", f"/api/jobs/{job['id']}/pause")
    response = await call(agent, "PATCH", f"/api/jobs/{job['id']}", json={"schedule": "every 2h"})
    assert response.status_code == 200
    assert response.json()["state"] == "paused"
    assert job["id"] not in await agent.nas.armed()


# -- delete ------------------------------------------------------------------------------


async def test_delete_cancels_at_nas_and_drops_the_runs(agent: Agent) -> None:
    job = await agent.create_job(schedule="every 1h", target=TRUE)
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    assert len(await agent.runs(job["id"])) == 1
    assert job["id"] in await agent.nas.armed()

    response = await call(agent, "DELETE", f"/api/jobs/{job['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert job["id"] not in await agent.nas.armed()
    assert agent.faults.calls[-1] == "cancel"
    assert (await call(agent, "GET", f"/api/jobs/{job['id']}")).status_code == 404
    assert (await call(agent, "GET", f"/api/jobs/{job['id']}/runs")).status_code == 404
    async with agent.services.store.transaction() as tx:
        assert await tx.fires.list_for_job(job["id"]) == []
        assert await tx.outbox.get(job["id"]) is None
    assert await list_jobs(agent) == []
    # A late fire for the deleted job is an unknown job now.
    late = await agent.fire(job["id"], job["next_run_at"])
    assert late.status_code == 200 and late.json()["reason"] == "unknown_job"


# -- pause / resume ------------------------------------------------------------------------


async def test_pause_cancels_and_resume_rearms(agent: Agent) -> None:
    job = await agent.create_job(schedule="every 1h", target=TRUE)
    paused = await call(agent, "POST", f"/api/jobs/{job['id']}/pause")
    assert paused.status_code == 200
    assert paused.json()["state"] == "paused"
    assert paused.json()["nas_pending"] is None
    assert job["id"] not in await agent.nas.armed()
    assert agent.faults.calls == ["provision", "cancel"]

    again = await call(agent, "POST", f"/api/jobs/{job['id']}/pause")
    assert again.status_code == 200 and again.json()["state"] == "paused"

    resumed = await call(agent, "POST", f"/api/jobs/{job['id']}/resume")
    assert resumed.status_code == 200
    body = resumed.json()
    assert body["state"] == "scheduled"
    next_run_at = assert_utc_second(body["next_run_at"])
    assert next_run_at > datetime.now(UTC)
    # An interval keeps its phase across a pause.
    assert (next_run_at - instant(job["next_run_at"])) % timedelta(hours=1) == timedelta(0)
    assert (await agent.nas.armed())[job["id"]] == body["next_run_at"]
    assert body["nas_pending"] is None


async def test_resume_of_a_scheduled_job_changes_nothing(agent: Agent) -> None:
    job = await agent.create_job(schedule="every 1h", target=TRUE)
    calls = list(agent.faults.calls)
    response = await call(agent, "POST", f"/api/jobs/{job['id']}/resume")
    assert response.status_code == 200
    assert response.json()["next_run_at"] == job["next_run_at"]
    assert agent.faults.calls == calls


async def test_a_completed_job_cannot_be_paused_or_resumed(agent: Agent) -> None:
    job = await agent.create_job(schedule="in 1h", target=TRUE)
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    for action in ("pause", "resume"):
        response = await call(agent, "POST", f"/api/jobs/{job['id']}/{action}")
        assert response.status_code == 409
        assert response.json()["error"] == "conflict"


# -- trigger -----------------------------------------------------------------------------


async def test_trigger_runs_now_in_its_own_key_space(agent: Agent) -> None:
    job = await agent.create_job(schedule="every 1h", target=py("print('manual')"))
    calls = list(agent.faults.calls)
    response = await call(agent, "POST", f"/api/jobs/{job['id']}/trigger")
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["key"].startswith("manual:")
    assert run["kind"] == "manual"
    assert run["status"] == "running"
    assert run.keys() >= RUN_FIELDS
    await agent.idle()

    [listed] = await agent.runs(job["id"])
    assert listed["key"] == run["key"]
    assert listed["status"] == "succeeded"
    assert listed["output"].strip() == "manual"
    after = await agent.job(job["id"])
    assert after["next_run_at"] == job["next_run_at"]
    assert after["state"] == "scheduled"
    assert after["last_status"] == "succeeded"
    assert after["last_run_at"] is not None
    assert agent.faults.calls == calls  # a manual run does not touch NAS
    assert (await agent.nas.armed())[job["id"]] == job["next_run_at"]

    # The scheduled fire is still its own, new fire.
    scheduled = await agent.fire(job["id"], job["next_run_at"])
    assert scheduled.status_code == 202
    assert scheduled.json()["status"] == "accepted"
    await agent.idle()
    assert [r["kind"] for r in await agent.runs(job["id"])] == ["scheduled", "manual"]


async def test_trigger_of_a_paused_job_runs_it_and_keeps_it_paused(agent: Agent) -> None:
    job = await agent.create_job(schedule="every 1h", target=TRUE)
    await call(agent, "POST", f"/api/jobs/{job['id']}/pause")
    response = await call(agent, "POST", f"/api/jobs/{job['id']}/trigger")
    assert response.status_code == 202
    await agent.idle()
    after = await agent.job(job["id"])
    assert after["state"] == "paused"
    assert job["id"] not in await agent.nas.armed()


# -- runs --------------------------------------------------------------------------------


async def test_runs_are_listed_newest_first_with_their_fields(agent: Agent) -> None:
    job = await agent.create_job(schedule="every 1h", target=py("print('out')"))
    first_at = job["next_run_at"]
    assert (await agent.fire(job["id"], first_at)).status_code == 202
    await agent.idle()
    second_at = (await agent.job(job["id"]))["next_run_at"]
    assert (await agent.fire(job["id"], second_at)).status_code == 202
    await agent.idle()
    await call(agent, "POST", f"/api/jobs/{job['id']}/trigger")
    await agent.idle()

    runs = await agent.runs(job["id"])
    assert [r["kind"] for r in runs] == ["manual", "scheduled", "scheduled"]
    assert [r["fire_at"] for r in runs[1:]] == [second_at, first_at]
    for run in runs:
        assert run.keys() >= RUN_FIELDS
        assert run["status"] == "succeeded"
        assert run["attempt"] == 1
        assert run["output"].strip() == "out"
        assert run["error"] is None  # an empty stderr is no error
        assert run["fire_at"].endswith("+00:00")
        started = instant(run["started_at"])
        finished = instant(run["finished_at"])
        assert run["started_at"].endswith("+00:00") and run["finished_at"].endswith("+00:00")
        assert started <= finished

    limited = await call(agent, "GET", f"/api/jobs/{job['id']}/runs", params={"limit": 1})
    assert [r["key"] for r in limited.json()] == [runs[0]["key"]]
    bad = await call(agent, "GET", f"/api/jobs/{job['id']}/runs", params={"limit": 0})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("limit")


async def test_a_failing_command_records_failed_with_the_error(agent: Agent) -> None:
    job = await agent.create_job(
        schedule="every 1h",
        target=py("import sys; print('partial'); sys.stderr.write('boom\\n'); sys.exit(3)"),
    )
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    [run] = await agent.runs(job["id"])
    assert run["status"] == "failed"
    assert "boom" in run["error"]
    assert run["output"].strip() == "partial"
    assert run["finished_at"] is not None
    after = await agent.job(job["id"])
    assert after["last_status"] == "failed"
    assert after["state"] == "scheduled"  # a failed run does not stop the schedule
    assert (await agent.nas.armed())[job["id"]] == after["next_run_at"]


async def test_a_command_that_cannot_start_is_failed(agent: Agent) -> None:
    job = await agent.create_job(
        schedule="every 1h", target={"type": "command", "argv": ["/nonexistent/program"]}
    )
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    [run] = await agent.runs(job["id"])
    assert run["status"] == "failed"
    assert run["error"] == "program not found: '/nonexistent/program'"


async def test_a_command_over_its_timeout_is_timed_out(agent: Agent) -> None:
    job = await agent.create_job(
        schedule="every 1h",
        target={**py("import time; time.sleep(30)"), "timeout_seconds": 0.5},
    )
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    [run] = await agent.runs(job["id"])
    assert run["status"] == "timed_out"


# -- repeat ------------------------------------------------------------------------------


async def test_repeat_two_completes_after_two_accepted_fires(
    clocked_agent: Agent, clock: ManualUtcClock
) -> None:
    agent = clocked_agent
    job = await agent.create_job(schedule="every 1h", target=TRUE, repeat=2)
    clock.now = instant(job["next_run_at"])  # each fire comes on time by the agent's clock
    first = await agent.fire(job["id"], job["next_run_at"])
    assert first.status_code == 202
    await agent.idle()
    middle = await agent.job(job["id"])
    assert middle["state"] == "scheduled"
    assert middle["runs_started"] == 1
    second_at = middle["next_run_at"]
    assert instant(second_at) - instant(job["next_run_at"]) == timedelta(hours=1)
    assert (await agent.nas.armed())[job["id"]] == second_at

    provisions = agent.faults.calls.count("provision")
    clock.now = instant(second_at)
    second = await agent.fire(job["id"], second_at)
    assert second.status_code == 202
    await agent.idle()
    done = await agent.job(job["id"])
    assert done["state"] == "completed"
    assert done["next_run_at"] is None
    assert done["runs_started"] == 2
    assert done["last_status"] == "succeeded"
    assert agent.faults.calls.count("provision") == provisions  # nothing more was armed
    # The fire that completed the job queued a cancel and pushed it before answering, so no
    # stray arm outlives the job: NAS holds nothing for it, and nothing is left pending.
    assert agent.faults.calls[-1] == "cancel"
    assert done["nas_pending"] is None
    assert job["id"] not in await agent.nas.armed()
    report = (await call(agent, "POST", "/api/reconcile")).json()
    assert report["ok"] is True
    assert job["id"] not in await agent.nas.armed()
    late = await agent.fire(job["id"], "2035-01-01T00:00:00+00:00")
    assert late.json()["reason"] == "completed"
    assert len(await agent.runs(job["id"])) == 2


async def test_a_completed_job_runs_again_after_a_new_schedule(agent: Agent) -> None:
    job = await agent.create_job(schedule="in 1h", target=TRUE)
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    response = await call(agent, "PATCH", f"/api/jobs/{job['id']}", json={"schedule": "in 2h"})
    assert response.status_code == 200
    revived = response.json()
    assert revived["state"] == "scheduled"
    assert (await agent.nas.armed())[job["id"]] == revived["next_run_at"]


# -- NAS failing during a mutation -----------------------------------------------------------


async def test_create_while_nas_is_down_succeeds_and_the_outbox_arms_it_later(agent: Agent) -> None:
    agent.faults.mode = "down"
    response = await call(agent, "POST", "/api/jobs", json={"schedule": "every 1h", "target": TRUE})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["nas_pending"] == "provision"
    assert job["state"] == "scheduled"
    assert await agent.nas.armed() == {}
    assert (await agent.job(job["id"]))["nas_pending"] == "provision"

    agent.faults.mode = None
    remaining = await agent.services.pusher.push_all(concurrency=4)
    assert remaining == 0
    assert (await agent.nas.armed())[job["id"]] == job["next_run_at"]
    assert (await agent.job(job["id"]))["nas_pending"] is None


@pytest.mark.parametrize("mode", ["down", "503"])
async def test_pause_and_delete_while_nas_fails_are_queued_cancels(agent: Agent, mode: str) -> None:
    paused_job = await agent.create_job(schedule="every 1h", target=TRUE)
    deleted_job = await agent.create_job(schedule="every 1h", target=TRUE)
    agent.faults.mode = mode
    paused = await call(agent, "POST", f"/api/jobs/{paused_job['id']}/pause")
    assert paused.status_code == 200
    assert paused.json()["state"] == "paused"
    assert paused.json()["nas_pending"] == "cancel"
    assert (await call(agent, "DELETE", f"/api/jobs/{deleted_job['id']}")).status_code == 204
    armed = await agent.nas.armed()
    assert paused_job["id"] in armed and deleted_job["id"] in armed

    agent.faults.mode = None
    assert await agent.services.pusher.push_all(concurrency=4) == 0
    assert await agent.nas.armed() == {}


async def test_patch_repeat_below_the_runs_made_completes_and_cancels(agent: Agent) -> None:
    job = await agent.create_job(schedule="every 1h", target=TRUE)
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    assert job["id"] in await agent.nas.armed()
    response = await call(agent, "PATCH", f"/api/jobs/{job['id']}", json={"repeat": 1})
    assert response.status_code == 200
    done = response.json()
    assert done["state"] == "completed" and done["next_run_at"] is None
    assert job["id"] not in await agent.nas.armed()


# -- regressions -----------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["every 99999999d", "in 99999999d", "every 1000000000d"])
async def test_an_out_of_range_schedule_is_400(agent: Agent, schedule: str) -> None:
    response = await call(agent, "POST", "/api/jobs", json={"schedule": schedule, "target": TRUE})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("schedule:")


async def test_patch_repeat_on_a_one_shot_is_refused_like_create(agent: Agent) -> None:
    job = await agent.create_job(schedule="in 1h", target=TRUE)
    response = await call(agent, "PATCH", f"/api/jobs/{job['id']}", json={"repeat": 3})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("repeat:")


async def test_list_reports_a_pending_nas_operation_like_show(agent: Agent) -> None:
    agent.faults.mode = "down"
    job = await agent.create_job(schedule="every 1h", target=TRUE)
    assert (await agent.job(job["id"]))["nas_pending"] == "provision"
    [listed] = await list_jobs(agent)
    assert listed["nas_pending"] == "provision"
