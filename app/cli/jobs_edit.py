"""`chronos jobs edit JOB [OPTIONS] [-- ARGV...]`: a partial edit over `PATCH /api/jobs/{id}`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from app.cli.client import JsonOpt, TokenOpt, UrlOpt
from app.cli.console import fail
from app.cli.render import job_card, print_result
from app.cli.resolve import on_job
from app.cli.targets import parse_target

UNLIMITED = "unlimited"


def _limit(option: str, value: str | None) -> tuple[bool, int | None]:
    """`(given, value)` of an integer option that `unlimited` clears (null in the PATCH)."""
    if value is None:
        return False, None
    if value.strip().lower() == UNLIMITED:
        return True, None
    try:
        return True, int(value)
    except ValueError:
        raise fail(f"{option}: give a whole number or {UNLIMITED!r}, not {value!r}") from None


def _target(
    target_json: str | None,
    http: str | None,
    method: str,
    command: list[str] | None,
    python: str | None,
    timeout: float | None,
) -> dict[str, Any] | None:
    """The new target, whole (PATCH replaces it), or None when the edit keeps it."""
    if target_json:
        try:
            target: dict[str, Any] = json.loads(target_json)
        except ValueError as exc:
            raise fail(f"--target is not valid JSON: {exc}") from None
        return target
    if http or command or python:
        return parse_target(http, method, command, python, timeout)
    if timeout is not None:
        raise fail("--timeout goes with a new target: --http, --python or -- ARGV...")
    return None


def jobs_edit(
    job: Annotated[str, typer.Argument(help="the job's id or name")],
    command: Annotated[
        list[str] | None, typer.Argument(help="argv of a new command target (after --)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="a new name")] = None,
    schedule: Annotated[
        str | None, typer.Option(help="a new schedule (re-arms the job from now)")
    ] = None,
    tz: Annotated[str | None, typer.Option("--tz", help="a new IANA zone (re-arms)")] = None,
    repeat: Annotated[
        str | None, typer.Option(help="number of runs, or 'unlimited'", show_default=False)
    ] = None,
    misfire_grace: Annotated[
        str | None,
        typer.Option(help="seconds a fire may be late and still run, or 'unlimited'"),
    ] = None,
    overlap: Annotated[
        str | None, typer.Option(help="while a run is going: skip, allow, buffer_one")
    ] = None,
    catchup: Annotated[
        str | None, typer.Option(help="fires that passed unarmed: run_once or skip")
    ] = None,
    http: Annotated[str | None, typer.Option("--http", help="a new http target's URL")] = None,
    method: Annotated[str, typer.Option(help="HTTP method of a new http target")] = "POST",
    python: Annotated[
        str | None, typer.Option("--python", help="a new package.module:function target")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="the new target's timeout")] = None,
    target_json: Annotated[
        str | None, typer.Option("--target", help="a new target as JSON (overrides the others)")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Edit a job (by id or name): only what is given changes.

    E.g. `chronos jobs edit backup --schedule "0 3 * * *" --tz Europe/Paris`; a new schedule
    or zone re-arms the job at NAS from now. A new target replaces the old one whole."""
    body: dict[str, Any] = {
        key: value
        for key, value in (
            ("name", name),
            ("schedule", schedule),
            ("timezone", tz),
            ("overlap", overlap),
            ("catchup", catchup),
        )
        if value is not None
    }
    for field, option, raw in (
        ("repeat", "--repeat", repeat),
        ("misfire_grace_seconds", "--misfire-grace", misfire_grace),
    ):
        given, value = _limit(option, raw)
        if given:
            body[field] = value
    target = _target(target_json, http, method, command, python, timeout)
    if target is not None:
        body["target"] = target
    if not body:
        raise fail(
            "nothing to edit: give at least one of --name, --schedule, --tz, --repeat,"
            " --misfire-grace, --overlap, --catchup, or a new target (--http, --python,"
            " --target, -- ARGV...)"
        )
    print_result(on_job(url, token, job, "PATCH", json=body), as_json, job_card)
