"""Where the CLI writes: rich consoles on stdout and stderr, and the one-line failure.

rich is imported when a console is made, so `chronos serve` (which writes through the log)
starts without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console


def out() -> Console:
    """A console on the current standard output.

    Made when needed rather than at import, so that its width and colours follow the
    streams and environment of the invocation (as under `typer.testing.CliRunner`).
    """
    from rich.console import Console

    return Console()


def err() -> Console:
    """A console on the current standard error (see `out`)."""
    from rich.console import Console

    return Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    # One line whatever the width: scripts and log collectors read it whole.
    err().print(f"[bold red]chronos:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)
