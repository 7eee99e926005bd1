"""`chronos jobs …`: jobs through the agent's admin API."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer

from app.cli.client import JsonOpt, TokenOpt, UrlOpt, admin_client, call
from app.cli.console import err, fail, out
from app.cli.jobs_edit import jobs_edit
from app.cli.render import job_card, jobs_table, print_result, runs_table
from app.cli.resolve import on_job, pages, resolve_job
from app.cli.runs import runs_app
from app.cli.targets import parse_target
from app.domain.states import JobState

jobs_app = typer.Typer(
    help="Manage jobs through the admin API; JOB is a job's id or its name.",
    no_args_is_help=True,
)


@jobs_app.command("add")
def jobs_add(
    schedule: Annotated[str, typer.Argument(help="'in 90s', ISO 8601, 'every 5m' or cron")],
    command: Annotated[
        list[str] | None, typer.Argument(help="argv of a command target (after --)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="job name")] = None,
    tz: Annotated[str, typer.Option("--tz", help="IANA zone for cron schedules")] = "UTC",
    http: Annotated[str | None, typer.Option("--http", help="URL of an http target")] = None,
    method: Annotated[str, typer.Option(help="HTTP method of an http target")] = "POST",
    python: Annotated[
        str | None, typer.Option("--python", help="package.module:function target")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="target timeout in seconds")] = None,
    repeat: Annotated[
        int | None, typer.Option(help="number of runs (default: 1 for one-shots, else unlimited)")
    ] = None,
    overlap: Annotated[
        str | None, typer.Option(help="while a run is going: skip (default), allow, buffer_one")
    ] = None,
    catchup: Annotated[
        str | None, typer.Option(help="fires that passed unarmed: run_once (default) or skip")
    ] = None,
    misfire_grace: Annotated[
        int | None, typer.Option(help="seconds a fire may be late and still run")
    ] = None,
    target_json: Annotated[
        str | None, typer.Option("--target", help="the target as JSON (overrides the others)")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a job, e.g. `chronos jobs add "every 5m" -- /usr/bin/backup --fast`."""
    if target_json:
        try:
            target = json.loads(target_json)
        except ValueError as exc:
            raise fail(f"--target is not valid JSON: {exc}") from None
    else:
        target = parse_target(http, method, command, python, timeout)
    body: dict[str, Any] = {"schedule": schedule, "timezone": tz, "target": target}
    if name:
        body["name"] = name
    if repeat is not None:
        body["repeat"] = repeat
    if overlap is not None:
        body["overlap"] = overlap
    if catchup is not None:
        body["catchup"] = catchup
    if misfire_grace is not None:
        body["misfire_grace_seconds"] = misfire_grace
    job = call("POST", "/api/jobs", url, token, json=body)
    print_result(job, as_json, job_card)


jobs_app.command("edit")(jobs_edit)  # here: `jobs --help` lists the commands in this order


BATCH_JOBS = 1000  # the agent's limit per `POST /api/jobs/batch`
BATCH_BYTES = 1_000_000  # under the agent's default CHRONOS_MAX_ADMIN_BODY_BYTES (1 MiB)


def read_jobs(file: str) -> list[Any]:
    """The jobs of a JSON file (`-`: stdin): a list, or an object with a `jobs` list."""
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise fail(f"{file} is not valid JSON: {exc}") from None
    jobs = data.get("jobs") if isinstance(data, dict) else data
    if not isinstance(jobs, list):
        raise fail(f'{file}: expected a JSON list of jobs or {{"jobs": [...]}}')
    if not jobs:
        raise fail(f"{file}: no jobs")
    return jobs


def batches(jobs: list[Any]) -> Iterator[tuple[int, list[Any]]]:
    """`(index of the first, batch)`: at most BATCH_JOBS jobs and about BATCH_BYTES each."""
    start, size = 0, 0
    for index, job in enumerate(jobs):
        job_size = len(json.dumps(job).encode()) + 2
        if index > start and (index - start == BATCH_JOBS or size + job_size > BATCH_BYTES):
            yield start, jobs[start:index]
            start, size = index, 0
        size += job_size
    yield start, jobs[start:]


def _refused(response: httpx.Response, start: int, created: int) -> typer.Exit:
    """Print why the agent refused the batch at `start` (each invalid item by its index in
    the file) and what was created before it."""
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text}
    console = err()
    for item in body.get("items") or []:
        field = f".{item['field']}" if item.get("field") else ""
        console.print(f"  jobs[{start + item['index']}]{field}: {item['detail']}", highlight=False)
    if created:
        console.print(f"created {created} jobs before this batch (items 0..{start - 1})")
    return fail(f"HTTP {response.status_code}: {body.get('detail', '')}", code=1)


@jobs_app.command("import")
def jobs_import(
    file: Annotated[
        str,
        typer.Argument(
            help='JSON file (- for stdin): a list of jobs or {"jobs": [...]}, each as'
            " POST /api/jobs takes it"
        ),
    ],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add many jobs from a JSON file, in batches of up to 1000 (`POST /api/jobs/batch`).

    Each batch is created whole or not at all; the first refused batch stops the import and
    its invalid items are listed by their index in the file."""
    jobs = read_jobs(file)
    created: list[dict[str, Any]] = []
    with admin_client(url, token) as client:
        for start, batch in batches(jobs):
            try:
                response = client.post("/api/jobs/batch", json={"jobs": batch})
            except httpx.TransportError as exc:
                raise fail(f"cannot reach the agent at {client.base_url}: {exc}") from None
            if response.status_code >= 400:
                raise _refused(response, start, len(created))
            created.extend(response.json()["jobs"])
    if as_json:
        out().print_json(json.dumps(created))
        return
    pending = sum(1 for job in created if job.get("nas_pending"))
    out().print(f"created {len(created)} jobs", highlight=False)
    if pending:
        out().print(f"{pending} not armed at NAS yet: the outbox keeps pushing them")


@jobs_app.command("list")
def jobs_list(
    state: Annotated[JobState | None, typer.Option(help="only jobs in this state")] = None,
    name: Annotated[
        str | None, typer.Option(help="only names matching this glob (* and ?; case-sensitive)")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, max=1000, help="one page of this many jobs (default: every job)"),
    ] = None,
    cursor: Annotated[str | None, typer.Option(help="start after this page's cursor")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, oldest first (every page, or one page with --limit).

    With --limit, --json prints the page with its `next_cursor`, and the table is followed
    on stderr by the options that list the next page."""
    params = {k: v for k, v in (("state", state), ("name", name), ("cursor", cursor)) if v}
    if limit is None:
        with admin_client(url, token) as client:
            jobs = [job for page in pages(client, params) for job in page["jobs"]]
        print_result(jobs, as_json, jobs_table)
        return
    page = call("GET", "/api/jobs", url, token, params={**params, "limit": limit})
    print_result(page if as_json else page["jobs"], as_json, jobs_table)
    if page["next_cursor"] and not as_json:
        err().print(f"more: --limit {limit} --cursor {page['next_cursor']}", highlight=False)


JobArg = Annotated[str, typer.Argument(help="the job's id or name", show_default=False)]


@jobs_app.command("show")
def jobs_show(
    job_id: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Show one job."""
    print_result(on_job(url, token, job_id, "GET"), as_json, job_card)


@jobs_app.command("pause")
def jobs_pause(
    job_id: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Pause a job (cancels its arm at NAS)."""
    print_result(on_job(url, token, job_id, "POST", "/pause"), as_json, job_card)


@jobs_app.command("resume")
def jobs_resume(
    job_id: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Resume a paused job from now."""
    print_result(on_job(url, token, job_id, "POST", "/resume"), as_json, job_card)


@jobs_app.command("rm")
def jobs_rm(
    job: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Delete a job (cancels its arm at NAS)."""
    with admin_client(url, token) as client:
        job_id = resolve_job(client, job)
    call("DELETE", f"/api/jobs/{quote(job_id, safe='')}", url, token)
    if as_json:
        out().print_json(json.dumps({"deleted": job_id}))
    else:
        out().print(f"deleted {job_id}")


@jobs_app.command("trigger")
def jobs_trigger(
    job_id: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Run a job now, outside its schedule."""
    run = on_job(url, token, job_id, "POST", "/trigger")
    print_result(run, as_json, lambda r: runs_table([r]))


jobs_app.add_typer(runs_app, name="runs")
