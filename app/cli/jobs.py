"""`chronos jobs …` and `chronos reconcile`: jobs through the agent's admin API."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from app.cli.client import JsonOpt, TokenOpt, UrlOpt, admin_client, call
from app.cli.console import err, fail, out
from app.cli.render import job_card, jobs_table, print_result, runs_table

jobs_app = typer.Typer(help="Manage jobs through the admin API.", no_args_is_help=True)


def parse_target(
    http: str | None,
    method: str,
    command: list[str] | None,
    python: str | None,
    timeout: float | None,
) -> dict[str, Any]:
    chosen = [x for x in (http, command, python) if x]
    if len(chosen) != 1:
        raise fail(
            "give exactly one target: --http URL, --python module:function, or a command"
            " after --: chronos jobs add SCHEDULE -- ARGV..."
        )
    target: dict[str, Any]
    if http:
        target = {"type": "http", "url": http, "method": method.upper()}
    elif command:
        target = {"type": "command", "argv": command}
    else:
        target = {"type": "python", "callable": python}
    if timeout is not None:
        target["timeout_seconds"] = timeout
    return target


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
def jobs_list(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List jobs."""
    print_result(call("GET", "/api/jobs", url, token), as_json, jobs_table)


@jobs_app.command("show")
def jobs_show(
    job_id: str, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Show one job."""
    job = call("GET", f"/api/jobs/{job_id}", url, token)
    print_result(job, as_json, job_card)


@jobs_app.command("pause")
def jobs_pause(
    job_id: str, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Pause a job (cancels its arm at NAS)."""
    print_result(call("POST", f"/api/jobs/{job_id}/pause", url, token), as_json, job_card)


@jobs_app.command("resume")
def jobs_resume(
    job_id: str, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Resume a paused job from now."""
    print_result(call("POST", f"/api/jobs/{job_id}/resume", url, token), as_json, job_card)


@jobs_app.command("rm")
def jobs_rm(
    job_id: str, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Delete a job (cancels its arm at NAS)."""
    call("DELETE", f"/api/jobs/{job_id}", url, token)
    if as_json:
        out().print_json(json.dumps({"deleted": job_id}))
    else:
        out().print(f"deleted {job_id}")


@jobs_app.command("trigger")
def jobs_trigger(
    job_id: str, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Run a job now, outside its schedule."""
    run = call("POST", f"/api/jobs/{job_id}/trigger", url, token)
    print_result(run, as_json, lambda r: runs_table([r]))


@jobs_app.command("runs")
def jobs_runs(
    job_id: str,
    limit: Annotated[int, typer.Option(help="how many runs, newest first")] = 20,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A job's runs, newest first."""
    runs = call("GET", f"/api/jobs/{job_id}/runs", url, token, params={"limit": limit})
    print_result(runs, as_json, runs_table)


def reconcile(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Reconcile the agent's jobs with what NAS has armed, now (the report is JSON either
    way; `--json` for symmetry with the other commands)."""
    report = call("POST", "/api/reconcile", url, token)
    out().print_json(json.dumps(report))
    if not report.get("ok"):
        raise typer.Exit(1)
