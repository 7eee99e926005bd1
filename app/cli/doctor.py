"""`chronos doctor`: check a deployment's settings, database and NAS, without an agent."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import typer

from app.cli.client import JsonOpt
from app.cli.console import out
from app.doctor.checks import Check, CheckStatus
from app.doctor.run import run_checks

if TYPE_CHECKING:
    from rich.table import Table

MARKS = {
    CheckStatus.OK: "[green]✓[/]",
    CheckStatus.WARN: "[yellow]![/]",
    CheckStatus.FAIL: "[red]✗[/]",
    CheckStatus.SKIPPED: "[dim]-[/]",
}


def doctor(as_json: JsonOpt = False) -> None:
    """Check this deployment's settings, database and NAS, without a running agent.

    Reads the CHRONOS_* variables and .env as `chronos serve` does and checks each value,
    the fire configuration, the callback URL, the database and its migrations, NAS's answer
    to the agent's token, NAS's JWKS and the clock against NAS's. Exit code 0 when every
    check passes (warnings pass), 1 otherwise."""
    checks = asyncio.run(run_checks())
    if as_json:
        out().print_json(json.dumps([check.as_dict() for check in checks]))
    else:
        out().print(checks_table(checks))
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


def checks_table(checks: list[Check]) -> Table:
    from rich.table import Table

    table = Table(header_style="bold")
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("result")
    table.add_column("fix")
    for check in checks:
        style = "dim" if check.status is CheckStatus.SKIPPED else None
        table.add_row(MARKS[check.status], check.name, check.reason, check.fix, style=style)
    return table
