"""`POST /api/jobs/apply`: declarative jobs keyed by name, through the ASGI app against a real
NAS emulator on loopback; and names unique on every route that writes one (409)."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.errors import NameTaken
from app.store import Store
from tests.support.agent import Agent
from tests.support.records import ANCHOR, job_row

pytestmark = pytest.mark.asyncio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jobs.yaml"
TRUE = {"type": "command", "argv": ["true"]}
FILE: list[dict[str, Any]] = [
    {"name": "backup", "schedule": "30 2 * * *", "timezone": "Europe/Paris", "target": TRUE},
    {
        "name": "heartbeat",
        "schedule": "every 5m",
        "target": {"type": "http", "url": "https://hooks.example.com/beat"},
        "retry": {"max_attempts": 3},
    },
    {"name": "report", "schedule": "@daily", "target": TRUE, "overlap": "allow"},
]


async def post_apply(agent: Agent, jobs: list[Any], **options: Any) -> httpx.Response:
    body = {"jobs": jobs, **options}
    return await agent.client.post("/api/jobs/apply", json=body, headers=agent.admin_headers)


async def applied(agent: Agent, jobs: list[Any], **options: Any) -> dict[str, Any]:
    response = await post_apply(agent, jobs, **options)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def stored(agent: Agent, job_id: str) -> dict[str, Any]:
    """The job as `GET /api/jobs/{id}` answers it, in the shape of the apply's `jobs`."""
    return {"preview": None, **await agent.job(job_id)}


def edited(jobs: list[dict[str, Any]], name: str, **changes: Any) -> list[dict[str, Any]]:
    edited_jobs = copy.deepcopy(jobs)
    next(job for job in edited_jobs if job["name"] == name).update(changes)
    return edited_jobs


async def test_first_apply_creates_and_arms_every_job(agent: Agent) -> None:
    answer = await applied(agent, FILE)
    assert answer["dry_run"] is False
    assert answer["created"] == ["backup", "heartbeat", "report"]
    assert (answer["updated"], answer["unchanged"], answer["deleted"]) == ([], [], [])
    jobs = answer["jobs"]
    assert [job["name"] for job in jobs] == ["backup", "heartbeat", "report"]
    armed = await agent.nas.armed()
    for job in jobs:
        assert job["nas_pending"] is None
        assert armed[job["id"]] == job["next_run_at"]
        assert job == await stored(agent, job["id"])
    assert jobs[1]["retry"]["max_attempts"] == 3 and jobs[2]["overlap"] == "allow"


async def test_applying_the_same_file_again_changes_nothing(agent: Agent) -> None:
    first = await applied(agent, FILE)
    calls = list(agent.faults.calls)
    armed = await agent.nas.armed()

    again = await applied(agent, FILE)
    assert again["unchanged"] == ["backup", "heartbeat", "report"]
    assert (again["created"], again["updated"], again["deleted"]) == ([], [], [])
    assert again["changes"] == {}
    assert agent.faults.calls == calls  # not one NAS call
    assert await agent.nas.armed() == armed
    assert again["jobs"] == first["jobs"]  # updated_at and next_run_at included
    for job in first["jobs"]:
        assert (await stored(agent, job["id"]))["updated_at"] == job["updated_at"]


async def test_a_changed_schedule_updates_the_job_and_arms_it_again(agent: Agent) -> None:
    first = {job["name"]: job for job in (await applied(agent, FILE))["jobs"]}
    answer = await applied(agent, edited(FILE, "heartbeat", schedule="every 10m"))
    assert answer["updated"] == ["heartbeat"]
    assert answer["changes"] == {"heartbeat": ["schedule"]}
    assert answer["unchanged"] == ["backup", "report"]
    job = next(job for job in answer["jobs"] if job["name"] == "heartbeat")
    assert job["id"] == first["heartbeat"]["id"]  # the same job, edited
    assert job["schedule"] == "every 10m"
    assert job["next_run_at"] != first["heartbeat"]["next_run_at"]
    assert (await agent.nas.armed())[job["id"]] == job["next_run_at"]


async def test_a_change_elsewhere_updates_without_arming(agent: Agent) -> None:
    await applied(agent, FILE)
    calls = list(agent.faults.calls)
    changed = edited(FILE, "report", overlap="skip", target={**TRUE, "timeout_seconds": 5})
    answer = await applied(agent, changed)
    assert answer["changes"] == {"report": ["target", "overlap"]}
    job = next(job for job in answer["jobs"] if job["name"] == "report")
    assert (job["overlap"], job["target"]["timeout_seconds"]) == ("skip", 5)
    assert agent.faults.calls == calls
    # An omitted field means its default: dropping `overlap: allow` is a change back to skip.
    assert (await applied(agent, changed))["unchanged"] == ["backup", "heartbeat", "report"]


async def test_an_omitted_field_is_its_default(agent: Agent) -> None:
    await applied(agent, FILE)
    plain = edited(FILE, "heartbeat")
    del plain[1]["retry"]
    answer = await applied(agent, plain)
    assert answer["changes"] == {"heartbeat": ["retry"]}
    job = next(job for job in answer["jobs"] if job["name"] == "heartbeat")
    assert job["retry"]["max_attempts"] == 1


async def test_a_dry_run_changes_nothing(agent: Agent) -> None:
    first = await applied(agent, FILE[:2])
    stray = await agent.create_job(name="stray", schedule="every 1h", target=TRUE)
    calls = list(agent.faults.calls)
    armed = await agent.nas.armed()

    desired = [*edited(FILE[:2], "backup", schedule="0 3 * * *"), FILE[2]]
    answer = await applied(agent, desired, dry_run=True, prune=True)
    assert answer["dry_run"] is True
    assert answer["created"] == ["report"]
    assert answer["updated"] == ["backup"] and answer["changes"] == {"backup": ["schedule"]}
    assert answer["unchanged"] == ["heartbeat"]
    assert answer["deleted"] == ["stray"]
    assert answer["jobs"] == []
    assert agent.faults.calls == calls
    assert await agent.nas.armed() == armed
    for job in [*first["jobs"], stray]:
        assert await stored(agent, job["id"]) == job
    assert (await applied(agent, FILE[:1], dry_run=True))["unchanged"] == ["backup"]


async def test_prune_deletes_the_jobs_not_in_the_file_and_cancels_them(agent: Agent) -> None:
    await applied(agent, FILE)
    stray = await agent.create_job(name="stray", schedule="every 1h", target=TRUE)
    assert stray["id"] in await agent.nas.armed()

    kept = await applied(agent, FILE[:2])  # without --prune, nothing is deleted
    assert kept["deleted"] == [] and kept["unchanged"] == ["backup", "heartbeat"]

    answer = await applied(agent, FILE[:2], prune=True)
    assert answer["deleted"] == ["report", "stray"]  # oldest first
    assert answer["unchanged"] == ["backup", "heartbeat"]
    armed = await agent.nas.armed()
    assert stray["id"] not in armed
    assert {job["id"] for job in answer["jobs"]} == set(armed)
    response = await agent.client.get(f"/api/jobs/{stray['id']}", headers=agent.admin_headers)
    assert response.status_code == 404


async def test_one_invalid_item_changes_nothing(agent: Agent) -> None:
    first = await applied(agent, FILE)
    calls = list(agent.faults.calls)
    broken = edited(FILE, "backup", schedule="0 4 * * *")
    broken.append({"name": "new-one", "schedule": "every whenever", "target": TRUE})
    broken.append({"name": "py", "schedule": "every 1h", "target": {"type": "python"}})
    response = await post_apply(agent, broken, prune=True)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert "nothing changed" in body["detail"]
    assert [(item["index"], item["field"]) for item in body["items"]] == [
        (3, "schedule"),
        (4, "target.callable"),
    ]
    assert agent.faults.calls == calls
    for job in first["jobs"]:
        assert await stored(agent, job["id"]) == job


async def test_a_name_given_twice_or_missing_is_refused(agent: Agent) -> None:
    twice = [*FILE, {**FILE[0], "schedule": "every 1h"}, {"schedule": "every 1h", "target": TRUE}]
    response = await post_apply(agent, twice)
    assert response.status_code == 400, response.text
    items = response.json()["items"]
    assert [(item["index"], item["field"]) for item in items] == [(3, "name"), (4, "name")]
    assert "jobs[0]" in items[0]["detail"]
    assert agent.faults.calls == []


async def test_a_past_time_for_a_new_job_is_refused_whole(agent: Agent) -> None:
    past = [*FILE, {"name": "late", "schedule": "2020-01-01T00:00:00Z", "target": TRUE}]
    response = await post_apply(agent, past)
    assert response.status_code == 400, response.text
    assert [(i["index"], i["field"]) for i in response.json()["items"]] == [(3, "schedule")]
    assert (await applied(agent, FILE, dry_run=True))["created"] == [j["name"] for j in FILE]


async def test_a_one_shot_whose_time_passed_stays_unchanged(agent: Agent) -> None:
    """Its time is judged when it is created or rescheduled, not on every apply."""
    at = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    once = [{"name": "once", "schedule": at.isoformat(), "target": TRUE}]
    assert (await applied(agent, once))["created"] == ["once"]
    await asyncio.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 0.5)
    assert (await applied(agent, once))["unchanged"] == ["once"]


async def test_a_paused_job_stays_paused_when_its_schedule_changes(agent: Agent) -> None:
    first = await applied(agent, FILE)
    heartbeat = first["jobs"][1]
    paused = await agent.client.post(
        f"/api/jobs/{heartbeat['id']}/pause", headers=agent.admin_headers
    )
    assert paused.status_code == 200
    answer = await applied(agent, edited(FILE, "heartbeat", schedule="every 7m"))
    job = answer["jobs"][1]
    assert (job["state"], job["schedule"]) == ("paused", "every 7m")
    assert job["id"] not in await agent.nas.armed()


async def test_the_example_file_applies_cleanly(agent: Agent) -> None:
    declared = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["jobs"]
    answer = await applied(agent, declared)
    assert answer["created"] == [job["name"] for job in declared]
    armed = await agent.nas.armed()
    assert all(armed[job["id"]] == job["next_run_at"] for job in answer["jobs"])
    again = await applied(agent, declared)
    assert again["unchanged"] == answer["created"]


# -- names are unique --------------------------------------------------------------------


async def test_a_name_already_used_is_a_409_on_create_batch_and_edit(agent: Agent) -> None:
    await agent.create_job(name="taken", schedule="every 1h", target=TRUE)
    other = await agent.create_job(name="other", schedule="every 1h", target=TRUE)
    headers = agent.admin_headers
    item = {"name": "taken", "schedule": "every 2h", "target": TRUE}

    answers = [
        await agent.client.post("/api/jobs", json=item, headers=headers),
        await agent.client.post("/api/jobs/batch", json={"jobs": [item]}, headers=headers),
        await agent.client.patch(
            f"/api/jobs/{other['id']}", json={"name": "taken"}, headers=headers
        ),
    ]
    for response in answers:
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["error"] == "conflict"
        assert body["detail"].startswith("name: ") and "'taken'" in body["detail"]

    fresh = {**item, "name": "fresh"}
    twice = await agent.client.post(
        "/api/jobs/batch", json={"jobs": [fresh, fresh]}, headers=headers
    )
    assert twice.status_code == 409 and "'fresh'" in twice.json()["detail"]
    same = await agent.client.patch(
        f"/api/jobs/{other['id']}", json={"name": "other"}, headers=headers
    )
    assert same.status_code == 200
    assert (await agent.job(other["id"]))["name"] == "other"


async def test_racing_writes_of_one_name_get_one_job_and_409s_never_500s(agent: Agent) -> None:
    item = {"name": "raced", "schedule": "every 1h", "target": TRUE}
    creates = await asyncio.gather(
        *(agent.client.post("/api/jobs", json=item, headers=agent.admin_headers) for _ in range(4))
    )
    assert sorted(r.status_code for r in creates) == [201, 409, 409, 409]

    applies = await asyncio.gather(*(post_apply(agent, FILE) for _ in range(3)))
    assert {r.status_code for r in applies} <= {200, 409}, [r.text for r in applies]
    # Whoever won, each name is one job, armed once.
    answer = await applied(agent, FILE)
    assert answer["unchanged"] == [job["name"] for job in FILE]
    armed = await agent.nas.armed()
    assert all(armed[job["id"]] == job["next_run_at"] for job in answer["jobs"])


async def test_jobs_without_a_name_get_distinct_ones(agent: Agent) -> None:
    jobs = [await agent.create_job(schedule="every 1h", target=TRUE) for _ in range(3)]
    assert len({job["name"] for job in jobs}) == 3
    assert all(job["name"] == f"job-{job['id']}" for job in jobs)


async def test_the_unique_index_refuses_a_name_any_write_brings(store: Store) -> None:
    """What a race past the checks meets: the index itself, answered as `NameTaken`."""
    now = ANCHOR
    async with store.transaction() as tx:
        await tx.jobs.insert(job_row("a", next_run_at=now, name="same"))
        await tx.jobs.insert(job_row("b", next_run_at=now, name="b"))
    with pytest.raises(NameTaken) as raised:
        async with store.transaction() as tx:
            await tx.jobs.insert(job_row("c", next_run_at=now, name="same"))
    assert raised.value.name == "same"
    with pytest.raises(NameTaken):
        async with store.transaction() as tx:
            await tx.jobs.insert_many([job_row("d", next_run_at=now, name="same")])
    with pytest.raises(NameTaken):
        async with store.transaction() as tx:
            await tx.jobs.update("b", {"name": "same"})
    async with store.transaction() as tx:  # the store goes on after each refusal
        assert [job.name for job in await tx.jobs.named(None)] == ["same", "b"]
