"""The dashboard at `/ui`: thin routes over the job service, behind a login with the admin
token. Pages are server-rendered; every change is a POST carrying the session's CSRF token.
Not part of the OpenAPI document."""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Request, Response

from app.api.deps import JobsDep, ServicesDep
from app.domain.states import RunStatus
from app.jobs.schemas import MAX_NAME_LENGTH
from app.ui.auth import (
    AdminTokenDep,
    CsrfDep,
    SessionDep,
    clear_session_cookie,
    form_field,
    require_session,
    set_session_cookie,
)
from app.ui.chart import lateness_chart
from app.ui.overview import overview
from app.ui.pages import LOGIN_PATH, DashboardRoute, LoginRequired, page, see_other
from app.ui.session import new_session, token_matches
from app.ui.views import job_details, job_row, local_text, run_row, utc_text
from app.validation import SafeText

JobId = Annotated[SafeText, Path(min_length=1, max_length=MAX_NAME_LENGTH)]
JOBS_SHOWN = 1000  # rows of the jobs table; the count above it is of every job
PREVIEW_COUNT = 10
RUNS_SHOWN = 50
# Messages shown after an action, by the code in `?done=`; anything else shows nothing.
DONE = {
    "paused": "Paused: its arm at NAS is cancelled.",
    "resumed": "Resumed: its next fire is armed.",
    "triggered": "Triggered: a manual run started.",
    "buffered": "Triggered: the manual run waits for the current run to end.",
    "skipped": "Not triggered: the previous run is still going (overlap policy skip).",
    "deleted": "Deleted, and cancelled at NAS.",
}

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=DashboardRoute)


def _job_url(job_id: str, done: str | None = None) -> str:
    return f"/ui/jobs/{quote(job_id, safe='')}" + (f"?done={done}" if done else "")


@router.get("/login")
async def login_form(request: Request, admin_token: AdminTokenDep) -> Response:
    try:
        require_session(request, admin_token)
    except LoginRequired:
        return page("login.html", error=None)
    return see_other("/ui")


@router.post("/login")
async def login(request: Request, admin_token: AdminTokenDep) -> Response:
    if not token_matches(await form_field(request, "token") or "", admin_token):
        return page("login.html", 401, error="That is not the admin token.")
    _, cookie = new_session(admin_token, time.time())
    response = see_other("/ui")
    set_session_cookie(response, request, cookie)
    return response


@router.post("/logout")
async def logout(request: Request, _: CsrfDep) -> Response:
    response = see_other(LOGIN_PATH)
    clear_session_cookie(response, request)
    return response


@router.get("")
async def jobs_page(
    session: SessionDep, jobs: JobsDep, services: ServicesDep, done: str | None = None
) -> Response:
    listed = await jobs.list_jobs()
    rows = [job_row(job, pending) for job, pending in listed[:JOBS_SHOWN]]
    return page(
        "jobs.html",
        csrf=session.csrf,
        jobs=rows,
        total=len(listed),
        state=await overview(services),
        done=DONE.get(done or ""),
    )


@router.get("/jobs/{job_id}")
async def job_page(
    job_id: JobId, session: SessionDep, jobs: JobsDep, done: str | None = None
) -> Response:
    job, pending = await jobs.get(job_id)
    runs = await jobs.runs(job_id, limit=RUNS_SHOWN)
    fires = [
        (local_text(f, job.timezone), utc_text(f)) for f in await jobs.preview(job, PREVIEW_COUNT)
    ]
    return page(
        "job.html",
        csrf=session.csrf,
        job=job_row(job, pending),
        details=job_details(job),
        fires=fires,
        runs=[run_row(run) for run in runs],
        chart=lateness_chart(runs),
        done=DONE.get(done or ""),
    )


@router.post("/jobs/{job_id}/pause")
async def pause(job_id: JobId, _: CsrfDep, jobs: JobsDep) -> Response:
    await jobs.pause(job_id)
    return see_other(_job_url(job_id, "paused"))


@router.post("/jobs/{job_id}/resume")
async def resume(job_id: JobId, _: CsrfDep, jobs: JobsDep) -> Response:
    await jobs.resume(job_id)
    return see_other(_job_url(job_id, "resumed"))


@router.post("/jobs/{job_id}/trigger")
async def trigger(job_id: JobId, _: CsrfDep, jobs: JobsDep) -> Response:
    run = await jobs.trigger(job_id)
    done = {RunStatus.SKIPPED: "skipped", RunStatus.BUFFERED: "buffered"}.get(run.status)
    return see_other(_job_url(job_id, done or "triggered"))


@router.get("/jobs/{job_id}/delete")
async def confirm_delete(job_id: JobId, session: SessionDep, jobs: JobsDep) -> Response:
    job, pending = await jobs.get(job_id)
    return page("delete.html", csrf=session.csrf, job=job_row(job, pending))


@router.post("/jobs/{job_id}/delete")
async def delete(job_id: JobId, _: CsrfDep, jobs: JobsDep) -> Response:
    await jobs.delete(job_id)
    return see_other("/ui?done=deleted")
