"""How the CLI shows jobs and runs: compact rich tables, a job card, short times, or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.cli.console import out
from app.clock import parse_instant

if TYPE_CHECKING:
    from rich.table import Table


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
    schedule: str = job["schedule"]
    return schedule + (f" [{job['timezone']}]" if job["timezone"] != "UTC" else "")


def _compact_table() -> Table:
    from rich.table import Table

    # No borders, two spaces between columns: fits 80 columns, wraps only names and schedules.
    return Table(box=None, padding=(0, 2, 0, 0), pad_edge=False, header_style="bold")


def _next_run(job: dict[str, Any]) -> str | None:
    """A paused (or completed) job has no next run, whatever time it would resume at."""
    return job.get("next_run_at") if job.get("state") == "scheduled" else None


def _table_time(value: str | None) -> str:
    """Compact UTC time for table cells (`11-26 22:32:49`); cards show the full instant."""
    if not value:
        return "-"
    return parse_instant(value).strftime("%m-%d %H:%M:%S")


def _duration(run: dict[str, Any]) -> str:
    started, finished = run.get("started_at"), run.get("finished_at")
    if not started or not finished:
        return "-"
    seconds = (parse_instant(finished) - parse_instant(started)).total_seconds()
    return f"{seconds:.1f}s" if seconds < 60 else f"{seconds / 60:.1f}m"


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
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
            _table_time(_next_run(job)),
            job.get("last_status") or "-",
        )
    return table


def job_card(job: dict[str, Any]) -> Table:
    """One job as `field  value` rows: readable at any terminal width."""
    from rich.table import Table

    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows = [
        ("id", job["id"]),
        ("name", job["name"]),
        ("schedule", _schedule_text(job)),
        ("state", job["state"]),
        ("next run", _short_time(_next_run(job))),
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
        parked = " (parked: NAS refused it; retried by the next reconcile)"
        rows.append(("NAS pending", job["nas_pending"] + (parked if job.get("nas_parked") else "")))
        if job.get("nas_error"):
            rows.append(("NAS error", job["nas_error"]))
    for field, value in rows:
        table.add_row(field, value)
    return table


def runs_table(runs: list[dict[str, Any]]) -> Table:
    table = _compact_table()
    table.add_column("run", no_wrap=True, justify="right")  # `runs show JOB RUN` takes it
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
            str(run.get("id", "-")),
            _table_time(run["fire_at"]),
            run["kind"],
            run["status"] + (f" (x{run['count']})" if run.get("count", 1) > 1 else ""),
            str(run["attempt"]),
            _duration(run),
            run.get("outcome") or "-",
            error[0][:120] if error else "",
        )
    return table


def print_result(data: Any, as_json: bool, render: Callable[[Any], Table] | None = None) -> None:
    """`data` as JSON with `--json` (or when there is no `render`), else as `render` draws it."""
    if as_json or render is None:
        out().print_json(json.dumps(data))
    else:
        out().print(render(data))
