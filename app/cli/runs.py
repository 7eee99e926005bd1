"""`chronos jobs runs JOB` (a job's runs) and `chronos jobs runs show JOB RUN` (one run, its
output and error in full); `chronos runs …` is the same group."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer
from typer.core import TyperGroup

from app.cli.client import JsonOpt, TokenOpt, UrlOpt
from app.cli.console import out
from app.cli.render import print_result, runs_table
from app.cli.resolve import on_job
from app.clock import parse_instant

if TYPE_CHECKING:
    from rich.table import Table


class DefaultsToList(TyperGroup):
    """A group whose first argument, when it names no command, is the `list` command's:
    `runs JOB` lists (`runs list show` lists the runs of a job named `show`)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


runs_app = typer.Typer(
    help="A job's runs: `runs JOB` lists them, `runs show JOB RUN` shows one in full.",
    cls=DefaultsToList,
    no_args_is_help=True,
)


@runs_app.command("list")
def runs_list(
    job: Annotated[str, typer.Argument(help="the job's id or name")],
    limit: Annotated[int, typer.Option(help="how many runs, newest first")] = 20,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A job's runs, newest first (the default: `runs JOB`)."""
    runs = on_job(url, token, job, "GET", "/runs", params={"limit": limit})
    print_result(runs, as_json, runs_table)


def _seconds_between(start: str | None, end: str | None) -> str:
    if not start or not end:
        return "-"
    return f"{(parse_instant(end) - parse_instant(start)).total_seconds():.3f}s"


def run_card(run: dict[str, Any]) -> Table:
    """A run's fields and its earlier attempts as `field  value` rows (output and error
    follow the card, unabridged)."""
    from rich.table import Table

    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    count = f" (x{run['count']})" if run.get("count", 1) > 1 else ""
    rows = [
        ("run", str(run.get("id", "-"))),
        ("key", run["key"]),
        ("job", run["job_id"]),
        ("kind", run["kind"]),
        ("status", run["status"] + count),
        ("attempt", str(run["attempt"])),
        ("fire at", run["fire_at"]),
        ("started", run.get("started_at") or "-"),
        ("finished", run.get("finished_at") or "-"),
        ("lateness", _seconds_between(run["fire_at"], run.get("started_at"))),
        ("duration", _seconds_between(run.get("started_at"), run.get("finished_at"))),
        ("outcome", run.get("outcome") or "-"),
    ]
    if run.get("retry_at"):
        rows.append(("retry at", run["retry_at"]))
    for earlier in run.get("previous_attempts") or []:
        took = _seconds_between(earlier.get("started_at"), earlier["finished_at"])
        what = earlier.get("error") or earlier.get("outcome") or ""
        rows.append((f"attempt {earlier['attempt']}", f"{earlier['status']} after {took}: {what}"))
    for field, value in rows:
        table.add_row(field, value)
    return table


@runs_app.command("show")
def runs_show(
    job: Annotated[str, typer.Argument(help="the job's id or name")],
    run: Annotated[str, typer.Argument(help="the run's id (as `runs JOB` lists it) or key")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One run: status, times, lateness, duration, attempts, and its whole output and error."""
    found = on_job(url, token, job, "GET", f"/runs/{quote(run, safe='')}")
    if as_json:
        out().print_json(json.dumps(found))
        return
    out().print(run_card(found))
    for label in ("output", "error"):
        typer.echo(f"\n--- {label} ---")
        text = found.get(label)
        typer.echo(text if text else "(none)")
