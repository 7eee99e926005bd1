"""The admin API: jobs and their runs, under `Authorization: Bearer $CHRONOS_ADMIN_TOKEN`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from app.api.deps import AdminDep, JobsDep, ReconcilerDep, SettingsDep
from app.api.limits import AdminBodyLimitRoute
from app.domain.states import RunStatus
from app.jobs.batch import BatchInvalid, JobBatch
from app.jobs.batch_schemas import BatchErrorOut, JobBatchCreate, JobBatchOut
from app.jobs.schemas import MAX_NAME_LENGTH, JobCreate, JobOut, JobPatch, RunOut
from app.jobs.service import JobService
from app.validation import SafeText

_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "invalid input; `detail` names the field", **_ERROR},
    401: {"description": "missing or wrong admin token", **_ERROR},
    403: {"description": "admin API disabled: no CHRONOS_ADMIN_TOKEN configured", **_ERROR},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such job", **_ERROR}}
_TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"description": "body over CHRONOS_MAX_ADMIN_BODY_BYTES (default 1 MiB)", **_ERROR}
}

JobId = Annotated[SafeText, Path(min_length=1, max_length=MAX_NAME_LENGTH)]
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
    responses=_TOO_LARGE,
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


@router.get("/jobs", response_model=list[JobOut], summary="List jobs")
async def list_jobs(jobs: JobsDep, reveal: Reveal = False) -> list[JobOut]:
    return [
        JobOut.from_record(job, pending=pending, reveal=reveal)
        for job, pending in await jobs.list_jobs()
    ]


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
    responses={**_NOT_FOUND, **_TOO_LARGE},
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
