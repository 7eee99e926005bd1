"""What `chronos serve` loads: only what serving needs, so the agent wakes fast and stays
small. Checked in a fresh interpreter, as the entry point would start."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.processes import base_env

# Loaded only by the commands that need them: migrations behind the head (Alembic, Mako),
# the CLI's output (rich, and pygments through httpx's own command line), the admin client,
# `chronos apply` and the YAML it reads.
NOT_FOR_SERVE = (
    "alembic",
    "mako",
    "rich",
    "pygments",
    "app.cli.jobs",
    "app.cli.runs",
    "app.cli.apply",
    "yaml",
    "app.cli.client",
    "sqlalchemy.dialects.postgresql",
)


def test_serve_imports_only_what_serving_needs() -> None:
    script = textwrap.dedent(
        """
        import sys
        import app.cli.main
        from app.cli.serve import without_httpx_cli

        without_httpx_cli()  # as `serve` does before it imports the app
        import uvicorn
        import app.main

        print("\\n".join(sorted(sys.modules)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    unwanted = [m for m in loaded if m.startswith(NOT_FOR_SERVE)]
    assert unwanted == []


def test_the_lazy_commands_are_listed_and_run() -> None:
    from typer.testing import CliRunner

    from app.cli.main import LAZY_COMMANDS, app

    result = CliRunner().invoke(app, ["--help"], prog_name="chronos")
    assert result.exit_code == 0
    assert all(name in result.stdout for name in LAZY_COMMANDS)
    typo = CliRunner().invoke(app, ["job"], prog_name="chronos")
    assert "Did you mean 'jobs'?" in typo.stderr
