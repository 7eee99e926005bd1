"""The `chronos` command: run the service, the NAS emulator, dev mode, and manage jobs.

This module builds the typer app from the commands of its neighbours: `serve` (serve,
migrate, nas-emulator, dev), `jobs` (the `jobs` group and `reconcile`) and `schedule`.
"""

from __future__ import annotations

import sys

import typer

from app.cli.jobs import jobs_app, reconcile
from app.cli.schedule import schedule_app
from app.cli.serve import dev, migrate, nas_emulator, serve

app = typer.Typer(
    name="chronos",
    help="Chronos: cron for agents that scale to zero, armed through NAS.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(jobs_app, name="jobs")
app.add_typer(schedule_app, name="schedule")
app.command()(serve)
app.command()(migrate)
app.command("nas-emulator")(nas_emulator)
app.command()(dev)
app.command()(reconcile)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
