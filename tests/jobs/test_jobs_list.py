"""`GET /api/jobs` a page at a time (`limit`, `cursor`, `next_cursor`, `Link`), its filters
(`state`, a `name` glob), and one run by id or key (`GET /api/jobs/{id}/runs/{run}`)."""

from __future__ import annotations

import asyncio
import base64
import sys
from typing import Any

import httpx
import pytest

from tests.support.agent import Agent

pytestmark = pytest.mark.asyncio

TRUE = {"type": "command", "argv": ["true"]}


async def get(agent: Agent, path: str, **params: Any) -> httpx.Response:
    return await agent.client.get(path, params=params, headers=agent.admin_headers)


async def every_page(agent: Agent, **params: Any) -> list[dict[str, Any]]:
    """The pages of `GET /api/jobs` with `params`, following `next_cursor` to the last."""
    pages = []
    while True:
        response = await get(agent, "/api/jobs", **params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        link = response.headers.get("link")
        if page["next_cursor"] is None:
            assert link is None
            return pages
        assert link is not None and link.endswith('>; rel="next"'), link
        assert f"cursor={page['next_cursor']}" in link and link.startswith("</api/jobs?")
        params["cursor"] = page["next_cursor"]


def names(pages: list[dict[str, Any]]) -> list[str]:
    return [job["name"] for page in pages for job in page["jobs"]]


async def test_pages_list_every_job_once_in_creation_order(agent: Agent) -> None:
    batch = [{"name": f"batch-{n}", "schedule": "every 1h", "target": TRUE} for n in range(7)]
    created = await agent.client.post(
        "/api/jobs/batch", json={"jobs": batch}, headers=agent.admin_headers
    )
    assert created.status_code == 201, created.text
    for n in range(4):
        await agent.create_job(name=f"single-{n}", schedule="every 1h", target=TRUE)
    everything = (await get(agent, "/api/jobs", limit=1000)).json()
    assert everything["next_cursor"] is None
    jobs = everything["jobs"]
    assert len(jobs) == 11
    # Oldest first; the batch's jobs share created_at and follow each other by id.
    assert [(j["created_at"], j["id"]) for j in jobs] == sorted(
        (j["created_at"], j["id"]) for j in jobs
    )

    for limit in (1, 3, 4, 11):
        pages = await every_page(agent, limit=limit)
        assert [j["id"] for page in pages for j in page["jobs"]] == [j["id"] for j in jobs]
        assert all(len(page["jobs"]) == limit for page in pages[:-1])
        assert 1 <= len(pages[-1]["jobs"]) <= limit
    [only] = await every_page(agent, limit=11)
    assert only["next_cursor"] is None  # no empty page after a full last one
    assert (await get(agent, "/api/jobs")).json()["next_cursor"] is None  # default: 100


async def test_a_job_deleted_between_pages_shifts_nothing(agent: Agent) -> None:
    jobs = [
        await agent.create_job(name=f"shift-{n}", schedule="every 1h", target=TRUE)
        for n in range(5)
    ]
    first = (await get(agent, "/api/jobs", limit=2)).json()
    gone = await agent.client.delete(f"/api/jobs/{jobs[1]['id']}", headers=agent.admin_headers)
    assert gone.status_code == 204
    rest = await every_page(agent, limit=2, cursor=first["next_cursor"])
    assert names([first]) + names(rest) == ["shift-0", "shift-1", "shift-2", "shift-3", "shift-4"]


async def test_state_and_name_filters_combine_with_paging(agent: Agent) -> None:
    for name in ("nightly_backup", "nightlyXbackup", "Nightly_report", "50%off", "50xoff"):
        await agent.create_job(name=name, schedule="every 1h", target=TRUE)
    paused = [
        await agent.create_job(name=f"nightly-paused-{n}", schedule="every 1h", target=TRUE)
        for n in range(3)
    ]
    for job in paused:
        response = await agent.client.post(
            f"/api/jobs/{job['id']}/pause", headers=agent.admin_headers
        )
        assert response.status_code == 200, response.text

    async def matching(**params: Any) -> list[str]:
        return names(await every_page(agent, limit=2, **params))

    # `_` and `%` match only themselves; `*` and `?` are the wildcards; case counts.
    assert await matching(name="nightly_*") == ["nightly_backup"]
    assert await matching(name="50%off") == ["50%off"]
    assert await matching(name="50?off") == ["50%off", "50xoff"]
    assert await matching(name="nightly?backup") == ["nightly_backup", "nightlyXbackup"]
    assert await matching(name="*_*") == ["nightly_backup", "Nightly_report"]
    assert await matching(name="N*") == ["Nightly_report"]
    assert await matching(name="nightly") == []
    assert await matching(name="[ab]*") == []  # brackets are no class: literal
    assert await matching(state="paused") == [f"nightly-paused-{n}" for n in range(3)]
    assert await matching(state="scheduled", name="nightly*") == [
        "nightly_backup",
        "nightlyXbackup",
    ]
    assert await matching(state="paused", name="*-1") == ["nightly-paused-1"]
    assert await matching(state="completed") == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"[1, 2]").decode()}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b'["2026-01-01T00:00:00", "x"]').decode()}, "cursor"),
        (
            {"cursor": base64.urlsafe_b64encode(b'["0001-01-01T00:00:00+14:00", "x"]').decode()},
            "cursor",
        ),
        (
            {
                "cursor": base64.urlsafe_b64encode(
                    b'["2026-01-01T00:00:00+00:00", "\\u0000"]'
                ).decode()
            },
            "cursor",
        ),
        ({"cursor": "x" * 1001}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"state": "active"}, "state"),
        ({"name": "x" * 201}, "name"),
    ],
)
async def test_invalid_paging_and_filters_are_400_naming_the_field(
    agent: Agent, params: dict[str, Any], field: str
) -> None:
    response = await get(agent, "/api/jobs", **params)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(field), response.text


async def test_one_run_by_id_or_key_with_its_whole_output(agent: Agent) -> None:
    code = (
        "import sys; print('o' * 3000 + 'END'); sys.stderr.write('e' * 2000 + 'FIN'); sys.exit(3)"
    )
    job = await agent.create_job(
        name="one-run",
        schedule="every 1h",
        target={"type": "command", "argv": [sys.executable, "-c", code]},
    )
    other = await agent.create_job(name="other", schedule="every 1h", target=TRUE)
    triggered = await agent.client.post(
        f"/api/jobs/{job['id']}/trigger", headers=agent.admin_headers
    )
    assert triggered.status_code == 202, triggered.text
    run_id, key = triggered.json()["id"], triggered.json()["key"]
    for _ in range(200):
        [listed] = await agent.runs(job["id"])
        if listed["status"] == "failed":
            break
        await asyncio.sleep(0.05)
    assert listed["id"] == run_id

    by_id = await get(agent, f"/api/jobs/{job['id']}/runs/{run_id}")
    assert by_id.status_code == 200, by_id.text
    run = by_id.json()
    assert run == listed
    assert run["output"] == "o" * 3000 + "END\n"
    assert run["error"] == "e" * 2000 + "FIN"
    by_key = await get(agent, f"/api/jobs/{job['id']}/runs/{key}")
    assert by_key.json() == run

    for path in (
        f"/api/jobs/{other['id']}/runs/{run_id}",  # not that job's run
        f"/api/jobs/{job['id']}/runs/{run_id + 1000}",
        f"/api/jobs/{job['id']}/runs/99999999999999999999",
        f"/api/jobs/{job['id']}/runs/manual:nope",
        f"/api/jobs/no-such-job/runs/{run_id}",
    ):
        missing = await get(agent, path)
        assert missing.status_code == 404, (path, missing.text)
        assert missing.json()["error"] == "not_found"
