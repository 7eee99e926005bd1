"""Jobs named by id or by name, and `GET /api/jobs` followed page after page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from app.cli.client import admin_client, answer, refused, request
from app.cli.console import fail

PAGE = 1000  # the agent's largest page


def pages(client: httpx.Client, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pages of `GET /api/jobs` with `params`, following `next_cursor` to the last."""
    params = {"limit": PAGE, **params}
    while True:
        page: dict[str, Any] = answer(client, "GET", "/api/jobs", params=params)
        yield page
        if not page.get("next_cursor"):
            return
        params["cursor"] = page["next_cursor"]


def resolve_job(client: httpx.Client, job: str) -> str:
    """The id of the job `job` names: a job with that id, else the one job with that name.

    None, or several jobs with that name, is a one-line failure (exit 1) that says so and
    lists the ids."""
    if not job:
        raise fail("give a job id or name")
    response = request(client, "GET", f"/api/jobs/{quote(job, safe='')}")
    if response.status_code == 200:
        return str(response.json()["id"])
    if response.status_code == 400:  # not even a valid id; names have the same limits
        raise fail(f"no job with id or name {job!r}", code=1)
    if response.status_code != 404:
        raise refused(response)
    # `name` is a glob: a name holding `*` or `?` matches more, so compare exactly here.
    ids = [
        found["id"]
        for page in pages(client, {"name": job})
        for found in page["jobs"]
        if found["name"] == job
    ]
    if not ids:
        raise fail(f"no job with id or name {job!r}", code=1)
    if len(ids) > 1:
        raise fail(f"{len(ids)} jobs are named {job!r}: {', '.join(ids)}; give an id", code=1)
    return str(ids[0])


def on_job(
    url: str | None, token: str | None, job: str, method: str, suffix: str = "", **kwargs: Any
) -> Any:
    """The answer of `method /api/jobs/{id}{suffix}` for the job `job` names (id or name)."""
    with admin_client(url, token) as client:
        job_id = quote(resolve_job(client, job), safe="")
        return answer(client, method, f"/api/jobs/{job_id}{suffix}", **kwargs)
