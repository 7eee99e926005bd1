"""The `chronos` command: run the service, the NAS emulator, dev mode, and manage jobs.

This module builds the typer app from the commands of its neighbours: `serve` (serve,
migrate, nas-emulator, dev), `jobs` (the `jobs` group and `reconcile`) and `schedule`.
The commands of `jobs` and `schedule` are loaded when one of them is named (or help lists
them): `chronos serve` never imports the admin client or the CLI's table rendering.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, MutableMapping
from functools import cache
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from app.cli.serve import dev, migrate, nas_emulator, serve

# After the eager commands, in this order, as `chronos --help` lists them.
LAZY_COMMANDS = ("reconcile", "jobs", "apply", "runs", "schedule", "status", "doctor")


@cache
def lazy_commands() -> dict[str, Any]:
    """The click commands of `LAZY_COMMANDS`, built as `app.command` / `app.add_typer` would."""
    from app.cli.apply import apply
    from app.cli.doctor import doctor
    from app.cli.jobs import jobs_app
    from app.cli.reconcile import reconcile
    from app.cli.runs import runs_app
    from app.cli.schedule import schedule_app
    from app.cli.status import status

    holder = typer.Typer()
    holder.command()(reconcile)
    holder.add_typer(jobs_app, name="jobs")
    holder.command()(apply)
    holder.add_typer(runs_app, name="runs")
    holder.add_typer(schedule_app, name="schedule")
    holder.command()(status)
    holder.command()(doctor)
    return {name: typer.main.get_group(holder).commands[name] for name in LAZY_COMMANDS}


class _Commands(MutableMapping[str, Any]):
    """A group's commands: its own, then `LAZY_COMMANDS`, built on first access to one of
    them. Names alone (listing, "did you mean") load nothing."""

    def __init__(self, commands: MutableMapping[str, Any]) -> None:
        self._own = commands

    def __getitem__(self, name: str) -> Any:
        if name in self._own:
            return self._own[name]
        if name in LAZY_COMMANDS:
            return lazy_commands()[name]
        raise KeyError(name)

    def __setitem__(self, name: str, command: Any) -> None:
        self._own[name] = command

    def __delitem__(self, name: str) -> None:
        del self._own[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._own
        yield from (name for name in LAZY_COMMANDS if name not in self._own)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class ChronosGroup(TyperGroup):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = _Commands(self.commands)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # names only: the lazy commands load when shown or run


app = typer.Typer(
    name="chronos",
    help="Chronos: cron for agents that scale to zero, armed through NAS.",
    no_args_is_help=True,
    add_completion=True,
    cls=ChronosGroup,
)


def _print_version(value: bool) -> None:
    if value:
        from app.version import VERSION

        typer.echo(f"chronos {VERSION}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Chronos: cron for agents that scale to zero, armed through NAS."""


app.command()(serve)
app.command()(migrate)
app.command("nas-emulator")(nas_emulator)
app.command()(dev)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
