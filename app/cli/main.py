"""The `chronos` command: run the service, the NAS emulator, dev mode, and manage jobs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from app.settings import ConfigError, Settings

app = typer.Typer(
    name="chronos",
    help="Chronos: cron for agents that scale to zero, armed through NAS.",
    no_args_is_help=True,
    add_completion=False,
)
jobs_app = typer.Typer(help="Manage jobs through the admin API.", no_args_is_help=True)
schedule_app = typer.Typer(help="Inspect schedules without an agent.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(schedule_app, name="schedule")

out = Console()
err = Console(stderr=True)

DEV_ADMIN_TOKEN_FILE = Path("data/dev/admin-token")


def fail(message: str, code: int = 2) -> typer.Exit:
    # One line whatever the width: scripts and log collectors read it whole.
    err.print(f"[bold red]chronos:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "CHRONOS_" + "_".join(str(p) for p in first["loc"]).upper() if first["loc"] else ""
        message = first["msg"].removeprefix("Value error, ")
        raise fail(f"configuration error: {name + ': ' if name else ''}{message}") from None


# -- serve -------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (CHRONOS_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (CHRONOS_PORT)")] = None,
) -> None:
    """Run the agent. Refuses to start when fires could not be verified or armed."""
    import uvicorn

    from app.logs import configure_logging
    from app.main import create_app

    settings = load_settings()
    try:
        settings.require_fire_config()
    except ConfigError as exc:
        raise fail(f"configuration error: {exc}") from None
    configure_logging(settings.log_level)
    for warning in settings.weak_secret_warnings():
        logging.getLogger("app.settings").warning(warning)
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips="*",
    )


@app.command()
def migrate() -> None:
    """Apply database migrations and exit (the service also applies them on start)."""
    from app.store import Store

    settings = load_settings()

    async def run() -> None:
        store = Store.from_url(settings.database_url)
        try:
            await store.migrate()
        finally:
            await store.close()

    asyncio.run(run())
    out.print("migrations applied")


# -- NAS emulator and dev mode ----------------------------------------------------------


@app.command("nas-emulator")
def nas_emulator(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 9000,
) -> None:
    """Run the NAS emulator (configured by NAS_EMULATOR_* variables)."""
    from app.emulator import EmulatorConfig, EmulatorConfigError, serve_emulator
    from app.logs import configure_logging

    try:
        config = EmulatorConfig.from_env()
    except EmulatorConfigError as exc:
        raise fail(f"configuration error: {exc}") from None
    configure_logging("INFO")
    asyncio.run(serve_emulator(config, host, port))


def _dev_secret(path: Path) -> str:
    """A random secret kept in `path` (mode 0600), so restarts of `chronos dev` reuse it."""
    import secrets

    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="agent port")] = 8080,
    nas_port: Annotated[int, typer.Option(help="NAS emulator port")] = 9000,
    data: Annotated[Path, typer.Option(help="folder for the database, tokens and NAS key")] = Path(
        "data/dev"
    ),
) -> None:
    """Run the agent and the NAS emulator together on loopback, with SQLite and matching keys."""
    import uvicorn

    from app.emulator import EmulatorConfig, build_uvicorn_server
    from app.logs import configure_logging
    from app.main import create_app

    data.mkdir(parents=True, exist_ok=True)
    admin_token = _dev_secret(data / "admin-token")
    nas_token = _dev_secret(data / "nas-token")
    nas_url = f"http://127.0.0.1:{nas_port}"
    agent_url = f"http://127.0.0.1:{port}"
    instance_id = "dev"
    settings = load_settings(
        env="dev",
        host="127.0.0.1",
        port=port,
        database_url=f"sqlite+aiosqlite:///{(data / 'chronos.db').as_posix()}",
        portal_url=nas_url,
        callback_url=agent_url,
        expected_audience=f"agent:{instance_id}",
        nas_jwks_url=f"{nas_url}/.well-known/jwks.json",
        nas_token=nas_token,
        admin_token=admin_token,
    )
    emulator_config = EmulatorConfig(
        public_url=nas_url,
        agent_tokens={nas_token: instance_id},
        key_file=str(data / "nas-key.pem"),
    )
    configure_logging(settings.log_level, json_lines=False)
    emulator = build_uvicorn_server(emulator_config, "127.0.0.1", nas_port, log_level="warning")
    agent = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    )

    token_hint = (
        "" if data == Path("data/dev") else f"CHRONOS_ADMIN_TOKEN=$(cat {data}/admin-token) "
    )
    out.print(
        f"[bold]Chronos dev[/]: agent {agent_url}  ·  NAS emulator {nas_url}\n"
        f"  data: {data}/ (SQLite, admin token, NAS token, NAS signing key)\n"
        "Add a first job from another shell:\n"
        f"  {token_hint}.venv/bin/chronos jobs add 'every 10s' --name hello -- "
        "sh -c 'date >> /tmp/chronos-hello.txt'\n"
        f"  {token_hint}.venv/bin/chronos jobs list\n"
        f"  curl {nas_url}/_emulator/deliveries   # what NAS delivered\n",
        highlight=False,
    )

    async def run_both() -> None:
        tasks = [asyncio.create_task(emulator.serve()), asyncio.create_task(agent.serve())]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        emulator.should_exit = agent.should_exit = True
        await asyncio.gather(*pending, return_exceptions=True)

    asyncio.run(run_both())


# -- admin API client --------------------------------------------------------------------


def _admin_client(url: str | None, token: str | None) -> httpx.Client:
    settings = load_settings()
    base = url or os.environ.get("CHRONOS_API_URL") or f"http://127.0.0.1:{settings.port}"
    secret = token or settings.admin_token_value()
    if not secret and DEV_ADMIN_TOKEN_FILE.exists():
        secret = DEV_ADMIN_TOKEN_FILE.read_text(encoding="utf-8").strip()
    if not secret:
        raise fail("no admin token: set CHRONOS_ADMIN_TOKEN (or CHRONOS_ADMIN_TOKEN_FILE)")
    return httpx.Client(
        base_url=base.rstrip("/"),
        headers={"Authorization": f"Bearer {secret}"},
        timeout=httpx.Timeout(30.0, connect=5.0),
    )


UrlOpt = Annotated[
    str | None, typer.Option("--url", help="agent base URL (CHRONOS_API_URL)", show_default=False)
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", help="admin token (CHRONOS_ADMIN_TOKEN)", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print raw JSON")]


def _call(method: str, path: str, url: str | None, token: str | None, **kwargs: Any) -> Any:
    with _admin_client(url, token) as client:
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise fail(f"cannot reach the agent at {client.base_url}: {exc}") from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise fail(f"HTTP {response.status_code}: {detail}", code=1)
    return response.json() if response.content else None


def _short_time(value: str | None) -> str:
    return value.replace("+00:00", "Z") if value else "-"


def _target_summary(target: dict[str, Any]) -> str:
    kind = target.get("type")
    if kind == "http":
        return f"{target.get('method', 'POST')} {target.get('url')}"
    if kind == "command":
        return " ".join(target.get("argv", []))
    return str(target.get("callable", kind))


def _schedule_text(job: dict[str, Any]) -> str:
    return job["schedule"] + (f" [{job['timezone']}]" if job["timezone"] != "UTC" else "")


def _compact_table() -> Table:
    # No borders, two spaces between columns: fits 80 columns, wraps only names and schedules.
    return Table(box=None, padding=(0, 2, 0, 0), pad_edge=False, header_style="bold")


def _jobs_table(jobs: list[dict[str, Any]]) -> Table:
    """One row a job; `jobs show ID` has the rest (target, policies)."""
    table = _compact_table()
    table.add_column("id", no_wrap=True, min_width=16)
    table.add_column("name", overflow="fold")
    table.add_column("schedule", overflow="fold")
    table.add_column("state", no_wrap=True, min_width=9)
    table.add_column("next run (UTC)", no_wrap=True, min_width=14)
    table.add_column("last", no_wrap=True, min_width=9)
    for job in jobs:
        table.add_row(
            job["id"],
            job["name"],
            _schedule_text(job),
            job["state"],
            _table_time(job.get("next_run_at")),
            job.get("last_status") or "-",
        )
    return table


def _job_card(job: dict[str, Any]) -> Table:
    """One job as `field  value` rows: readable at any terminal width."""
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows = [
        ("id", job["id"]),
        ("name", job["name"]),
        ("schedule", _schedule_text(job)),
        ("state", job["state"]),
        ("next run", _short_time(job.get("next_run_at"))),
        ("last run", _short_time(job.get("last_run_at"))),
        ("last status", job.get("last_status") or "-"),
        ("target", _target_summary(job["target"])),
        ("repeat", str(job["repeat"]) if job.get("repeat") else "unlimited"),
        ("overlap", job.get("overlap", "-")),
        ("catchup", job.get("catchup", "-")),
        (
            "misfire grace",
            f"{job['misfire_grace_seconds']}s"
            if job.get("misfire_grace_seconds") is not None
            else "unlimited",
        ),
    ]
    if job.get("nas_pending"):
        rows.append(("NAS pending", job["nas_pending"]))
    for field, value in rows:
        table.add_row(field, value)
    return table


def _table_time(value: str | None) -> str:
    """Compact UTC time for table cells (`11-26 22:32:49`); cards show the full instant."""
    if not value:
        return "-"
    return datetime.fromisoformat(value).strftime("%m-%d %H:%M:%S")


def _duration(run: dict[str, Any]) -> str:
    started, finished = run.get("started_at"), run.get("finished_at")
    if not started or not finished:
        return "-"
    seconds = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    return f"{seconds:.1f}s" if seconds < 60 else f"{seconds / 60:.1f}m"


def _runs_table(runs: list[dict[str, Any]]) -> Table:
    table = _compact_table()
    table.add_column("fire_at (UTC)", no_wrap=True, min_width=14)
    table.add_column("kind", no_wrap=True, min_width=9)
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("try", no_wrap=True, justify="right")
    table.add_column("took", no_wrap=True, justify="right")
    table.add_column("outcome", no_wrap=True)
    table.add_column("error", overflow="fold")
    for run in runs:
        error = (run.get("error") or "").strip().splitlines()
        table.add_row(
            _table_time(run["fire_at"]),
            run["kind"],
            run["status"] + (f" (x{run['count']})" if run.get("count", 1) > 1 else ""),
            str(run["attempt"]),
            _duration(run),
            run.get("outcome") or "-",
            error[0][:120] if error else "",
        )
    return table


def _print(data: Any, as_json: bool, render: Any = None) -> None:
    if as_json or render is None:
        out.print_json(json.dumps(data))
    else:
        out.print(render(data))


def _parse_target(
    http: str | None,
    method: str,
    command: list[str] | None,
    python: str | None,
    timeout: float | None,
) -> dict[str, Any]:
    chosen = [x for x in (http, command, python) if x]
    if len(chosen) != 1:
        raise fail(
            "give exactly one target: --http URL, --command ARG… or --python module:function"
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
        target = _parse_target(http, method, command, python, timeout)
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
    job = _call("POST", "/api/jobs", url, token, json=body)
    _print(job, as_json, _job_card)


@jobs_app.command("list")
def jobs_list(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List jobs."""
    _print(_call("GET", "/api/jobs", url, token), as_json, _jobs_table)


@jobs_app.command("show")
def jobs_show(
    job_id: str, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Show one job."""
    job = _call("GET", f"/api/jobs/{job_id}", url, token)
    _print(job, as_json, _job_card)


@jobs_app.command("pause")
def jobs_pause(
    job_id: str, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Pause a job (cancels its arm at NAS)."""
    _print(_call("POST", f"/api/jobs/{job_id}/pause", url, token), as_json, _job_card)


@jobs_app.command("resume")
def jobs_resume(
    job_id: str, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Resume a paused job from now."""
    _print(_call("POST", f"/api/jobs/{job_id}/resume", url, token), as_json, _job_card)


@jobs_app.command("rm")
def jobs_rm(job_id: str, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Delete a job (cancels its arm at NAS)."""
    _call("DELETE", f"/api/jobs/{job_id}", url, token)
    out.print(f"deleted {job_id}")


@jobs_app.command("trigger")
def jobs_trigger(
    job_id: str, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Run a job now, outside its schedule."""
    run = _call("POST", f"/api/jobs/{job_id}/trigger", url, token)
    _print(run, as_json, lambda r: _runs_table([r]))


@jobs_app.command("runs")
def jobs_runs(
    job_id: str,
    limit: Annotated[int, typer.Option(help="how many runs, newest first")] = 20,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A job's runs, newest first."""
    runs = _call("GET", f"/api/jobs/{job_id}/runs", url, token, params={"limit": limit})
    _print(runs, as_json, _runs_table)


@app.command()
def reconcile(url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Reconcile the agent's jobs with what NAS has armed, now."""
    report = _call("POST", "/api/reconcile", url, token)
    out.print_json(json.dumps(report))
    if not report.get("ok"):
        raise typer.Exit(1)


@schedule_app.command("preview")
def schedule_preview(
    schedule: Annotated[str, typer.Argument(help="'in 90s', ISO 8601, 'every 5m' or cron")],
    tz: Annotated[str, typer.Option("--tz", help="IANA zone of a cron schedule")] = "UTC",
    after: Annotated[
        str | None,
        typer.Option(help="ISO 8601 instant to start from, with offset (default: now)"),
    ] = None,
    count: Annotated[int, typer.Option(help="how many fires", min=1, max=10000)] = 5,
) -> None:
    """Print the next COUNT fire instants, one per line, as ISO 8601 in UTC."""
    from datetime import UTC, datetime

    from app.schedule import ScheduleError, next_fire_after, parse_schedule, upcoming_fires

    try:
        parsed = parse_schedule(schedule, tz)
    except ScheduleError as exc:
        raise fail(str(exc)) from None
    if after is None:
        start = datetime.now(UTC)
    else:
        try:
            start = datetime.fromisoformat(after.replace("Z", "+00:00"))
        except ValueError:
            raise fail(f"--after: not an ISO 8601 instant: {after!r}") from None
        if start.utcoffset() is None:
            raise fail("--after: give a UTC offset (for example 2026-03-08T00:00:00+00:00)")
    # `start` is also the anchor: a delay or interval counts from it, as for a job created then.
    first = next_fire_after(parsed, start, start)
    for instant in upcoming_fires(parsed, start, first, count):
        print(instant.astimezone(UTC).isoformat())


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
