"""`chronos …` run in this process with typer's `CliRunner`, as a subprocess would run it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from app.cli.main import app


@dataclass(frozen=True)
class Ran:
    """What an invocation left, named as on `subprocess.CompletedProcess`."""

    returncode: int
    stdout: str
    stderr: str


def run_chronos(
    args: Sequence[str], *, env: Mapping[str, str], cwd: Path, stdin: str | None = None
) -> Ran:
    """`chronos ARGS` with exactly `env` as its environment and `cwd` as its working directory,
    as `subprocess.run([chronos, *args], env=env, cwd=cwd)` would run it, but in this process.

    CliRunner sets `env` (and unsets every other variable) for the invocation only; `cwd`
    holds just for the invocation too (settings read `.env` and `data/dev/admin-token`
    from it); `stdin` is what the command reads on its standard input. An exception escaping
    a command is raised here: a process would have printed a traceback.
    """
    environment: dict[str, str | None] = dict.fromkeys(os.environ)
    environment.update(env)
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(
            app,
            list(args),
            input=stdin,
            env=environment,
            prog_name="chronos",
            catch_exceptions=False,
        )
    return Ran(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)
