"""`chronos schedule preview`: a schedule's next fire instants, without an agent."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

import typer

from app.cli.console import fail
from app.clock import InvalidInstant, parse_instant, utc_now

schedule_app = typer.Typer(help="Inspect schedules without an agent.", no_args_is_help=True)


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
    from app.schedule import ScheduleError, next_fire_after, parse_schedule, upcoming_fires

    try:
        parsed = parse_schedule(schedule, tz)
    except ScheduleError as exc:
        raise fail(str(exc)) from None
    if after is None:
        start = utc_now()
    else:
        try:
            start = parse_instant(after)
        except InvalidInstant as exc:
            if exc.problem == "offset":
                raise fail(
                    "--after: give a UTC offset (for example 2026-03-08T00:00:00+00:00)"
                ) from None
            raise fail(f"--after: not an ISO 8601 instant: {after!r}") from None
    # `start` is also the anchor: a delay or interval counts from it, as for a job created then.
    first = next_fire_after(parsed, start, start)
    for instant in upcoming_fires(parsed, start, first, count):
        print(instant.astimezone(UTC).isoformat())
