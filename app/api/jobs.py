"""The admin API: jobs and their runs, under `Authorization: Bearer $CHRONOS_ADMIN_TOKEN`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from app.api.deps import AdminDep, JobsDep, ReconcilerDep, SettingsDep, StoreDep
from app.api.limits import AdminBodyLimitRoute
from app.domain.states import JobState, RunStatus
from app.jobs.apply import JobApplier
from app.jobs.apply_schemas import JobApply, JobApplyOut
from app.jobs.batch import BatchInvalid, JobBatch
from app.jobs.batch_schemas import BatchErrorOut, JobBatchCreate, JobBatchOut
from app.jobs.reads import DEFAULT_PAGE, MAX_PAGE, JobQuery, find_run, list_page
from app.jobs.schemas import MAX_NAME_LENGTH, JobCreate, JobOut, JobPageOut, JobPatch, RunOut
from app.jobs.service import JobService
from app.validation import SafeText

_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "invalid input; `detail` names the field", **_ERROR},
    401: {"description": "missing or wrong admin token", **_ERROR},
    403: {"description": "admin API disabled: no CHRONOS_ADMIN_TOKEN configured", **_ERROR},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such job", **_ERROR}}
_NAME_TAKEN: dict[int | str, dict[str, Any]] = {
    409: {"description": "`name` is another job's (names are unique), or given twice", **_ERROR}
}
_TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"description": "body over CHRONOS_MAX_ADMIN_BODY_BYTES (default 1 MiB)", **_ERROR}
}

JobId = Annotated[SafeText, Path(min_length=1, max_length=MAX_NAME_LENGTH)]
RunId = Annotated[SafeText, Path(min_length=1, max_length=300, description="a run's id or key")]
Reveal = Annotated[
    bool,
    Query(
        description="answer the target's header, env and kwargs values and URL password as"
        " stored, instead of `***`"
    ),
]

router = APIRouter(
    prefix="/api",
    tags=["admin"],
    dependencies=[AdminDep],
    responses=_AUTH_ERRORS,
    route_class=AdminBodyLimitRoute,
)


async def _job_out(jobs: JobService, job_id: str) -> JobOut:
    job, pending = await jobs.get(job_id)
    return JobOut.from_record(job, pending=pending)


@router.post(
    "/jobs",
    status_code=201,
    response_model=JobOut,
    responses={**_NAME_TAKEN, **_TOO_LARGE},
    summary="Create a job and arm it",
)
async def create_job(body: JobCreate, jobs: JobsDep) -> JobOut:
    job = await jobs.create(body)
    return await _job_out(jobs, job.id)


@router.post(
    "/jobs/batch",
    status_code=201,
    response_model=JobBatchOut,
    responses={
        400: {
            "model": BatchErrorOut,
            "description": "invalid input, nothing created: `items` names every invalid item"
            ' by its index and field; a body that is not `{"jobs": [1..1000 items]}` is'
            " refused without `items`",
        },
        **_NAME_TAKEN,
        **_TOO_LARGE,
    },
    summary="Create 1 to 1000 jobs at once, all or none, and arm them",
)
async def create_jobs(
    body: JobBatchCreate, jobs: JobsDep, settings: SettingsDep
) -> JobBatchOut | JSONResponse:
    batch = JobBatch(jobs, concurrency=settings.reconcile_concurrency)
    try:
        return JobBatchOut(jobs=await batch.create(body.jobs))
    except BatchInvalid as exc:
        return JSONResponse(exc.body(), status_code=exc.status_code)


@router.get(
    "/jobs",
    response_model=JobPageOut,
    summary="List jobs, oldest first, a page at a time (`next_cursor`, and a `Link` header)",
)
async def list_jobs(
    request: Request,
    response: Response,
    store: StoreDep,
    limit: int = Query(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE, description="jobs per page"),
    cursor: SafeText | None = Query(
        default=None, max_length=1000, description="`next_cursor` of the previous page"
    ),
    state: JobState | None = Query(default=None, description="only jobs in this state"),
    name: SafeText | None = Query(
        default=None,
        max_length=MAX_NAME_LENGTH,
        description="only jobs whose name matches this glob (`*`: any characters, `?`: one;"
        " everything else, `%` and `_` included, matches itself; case-sensitive)",
    ),
    reveal: Reveal = False,
) -> JobPageOut:
    query = JobQuery(limit=limit, cursor=cursor, state=state, name=name)
    page = await list_page(store, query)
    if page.next_cursor is not None:
        following = request.url.include_query_params(cursor=page.next_cursor)
        response.headers["Link"] = f'<{following.path}?{following.query}>; rel="next"'
    return JobPageOut(
        jobs=[JobOut.from_record(j, pending=p, reveal=reveal) for j, p in page.jobs],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    response_model_exclude_unset=True,
    responses=_NOT_FOUND,
    summary="Show a job; `?preview=N` adds its next N fires",
)
async def get_job(
    job_id: JobId,
    jobs: JobsDep,
    preview: int | None = Query(default=None, ge=1, le=1000, description="next N fires"),
    reveal: Reveal = False,
) -> JobOut:
    job, pending = await jobs.get(job_id)
    out = JobOut.from_record(job, pending=pending, reveal=reveal)
    if preview is not None:
        out.preview = await jobs.preview(job, preview)
    return out


@router.patch(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses={**_NOT_FOUND, **_NAME_TAKEN, **_TOO_LARGE},
    summary="Edit a job",
)
async def update_job(job_id: JobId, body: JobPatch, jobs: JobsDep) -> JobOut:
    await jobs.update(job_id, body)
    return await _job_out(jobs, job_id)


@router.delete(
    "/jobs/{job_id}", status_code=204, responses=_NOT_FOUND, summary="Delete a job and cancel it"
)
async def delete_job(job_id: JobId, jobs: JobsDep) -> Response:
    await jobs.delete(job_id)
    return Response(status_code=204)


@router.post(
    "/jobs/{job_id}/pause", response_model=JobOut, responses=_NOT_FOUND, summary="Pause a job"
)
async def pause_job(job_id: JobId, jobs: JobsDep) -> JobOut:
    await jobs.pause(job_id)
    return await _job_out(jobs, job_id)


@router.post(
    "/jobs/{job_id}/resume",
    response_model=JobOut,
    responses={**_NOT_FOUND, 409: {"description": "cannot resume", **_ERROR}},
    summary="Resume a paused job from now",
)
async def resume_job(job_id: JobId, jobs: JobsDep) -> JobOut:
    await jobs.resume(job_id)
    return await _job_out(jobs, job_id)


@router.post(
    "/jobs/{job_id}/trigger",
    status_code=202,
    response_model=RunOut,
    responses={
        **_NOT_FOUND,
        200: {"description": "skipped by the overlap policy: the previous run is still going"},
        202: {"description": "running now, or buffered until the current run ends"},
    },
    summary="Run a job now, outside its schedule (key `manual:<uuid>`)",
)
async def trigger_job(job_id: JobId, jobs: JobsDep, response: Response) -> RunOut:
    run = await jobs.trigger(job_id)
    if run.status == "skipped":
        response.status_code = 200
    return RunOut.from_record(run)


@router.get(
    "/jobs/{job_id}/runs",
    response_model=list[RunOut],
    responses=_NOT_FOUND,
    summary="A job's runs, newest first",
)
async def list_runs(
    job_id: JobId, jobs: JobsDep, limit: int = Query(default=50, ge=1, le=1000)
) -> list[RunOut]:
    return [RunOut.from_record(f) for f in await jobs.runs(job_id, limit=limit)]


@router.get(
    "/jobs/{job_id}/runs/{run_id}",
    response_model=RunOut,
    responses={404: {"description": "no such job, or no such run of it", **_ERROR}},
    summary="One run of a job, by its `id` or its `key`, with its whole output and error",
)
async def get_run(job_id: JobId, run_id: RunId, store: StoreDep) -> RunOut:
    return RunOut.from_record(await find_run(store, job_id, run_id))


@router.get(
    "/runs",
    response_model=list[RunOut],
    summary="Runs of every job, newest first; `?status=failed` lists the failed ones",
)
async def list_runs_across_jobs(
    jobs: JobsDep,
    status: RunStatus | None = Query(default=None, description="only runs in this status"),
    limit: int = Query(default=50, ge=1, le=1000),
) -> list[RunOut]:
    return [RunOut.from_record(f) for f in await jobs.runs_across_jobs(status, limit=limit)]


@router.post("/reconcile", summary="Reconcile NAS arms with the store now")
async def reconcile(reconciler: ReconcilerDep) -> dict[str, object]:
    report = await reconciler.reconcile()
    return report.as_dict()


@router.post(
    "/jobs/apply",
    response_model=JobApplyOut,
    responses={
        400: {
            "model": BatchErrorOut,
            "description": "invalid input, nothing changed: `items` names every invalid item"
            " (a name given twice included) by its index and field",
        },
        409: {"description": "a job was created meanwhile under a name of the file", **_ERROR},
        **_TOO_LARGE,
    },
    summary="Make the jobs what the list declares, by name: create, update, keep, prune",
)
async def apply_jobs(
    body: JobApply, jobs: JobsDep, settings: SettingsDep
) -> JobApplyOut | JSONResponse:
    applier = JobApplier(jobs, concurrency=settings.reconcile_concurrency)
    try:
        return await applier.apply(body.jobs, prune=body.prune, dry_run=body.dry_run)
    except BatchInvalid as exc:
        return JSONResponse(exc.body(), status_code=exc.status_code)
