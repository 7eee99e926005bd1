"""A schedule in plain words (`every 5 minutes`, `at 09:00 on Monday to Friday`), for people
reading a list of jobs. Pure: the words depend on the schedule text alone, not on the clock."""

from __future__ import annotations

from datetime import timedelta

from app.schedule.core import Schedule, ScheduleError, parse_schedule
from app.schedule.crontab import CronExpression

_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MACROS = {
    "@hourly": "every hour, on the hour",
    "@daily": "every day at 00:00",
    "@midnight": "every day at 00:00",
    "@weekly": "every Sunday at 00:00",
    "@monthly": "on the 1st of every month at 00:00",
    "@yearly": "every 1 January at 00:00",
    "@annually": "every 1 January at 00:00",
}
_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))
_FIELD_SIZES = (60, 24, 31, 12, 7)  # how many values a full field has


def _span(delta: timedelta) -> str:
    """`90 seconds`, `5 minutes`, `1 day`: the largest unit that divides the span."""
    seconds = int(delta.total_seconds())
    for size, unit in _UNITS:
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}" + ("" if count == 1 else "s")
    return f"{seconds} seconds"  # pragma: no cover - the 1-second unit always divides


def _every(delta: timedelta) -> str:
    text = _span(delta)
    return "every " + text.removeprefix("1 ")


def _runs(values: list[int]) -> list[tuple[int, int]]:
    """Consecutive values grouped as (first, last) pairs."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _listing(values: frozenset[int], name: tuple[str, ...] | None = None, offset: int = 0) -> str:
    """`Monday to Friday`, `1, 15`, `9 to 17`: runs of three or more as ranges."""

    def word(value: int) -> str:
        return name[value - offset] if name else str(value)

    parts = []
    for first, last in _runs(sorted(values)):
        if last - first >= 2:
            parts.append(f"{word(first)} to {word(last)}")
        else:
            parts.extend(word(v) for v in range(first, last + 1))
    return ", ".join(parts)


def _step(field: str) -> int | None:
    """n of a `*/n` field, else None."""
    if field.startswith("*/") and field[2:].isdigit():
        return int(field[2:])
    return None


def _time_of_day(expr: CronExpression) -> str:
    minute_field, hour_field = expr.fields[0], expr.fields[1]
    minutes, hours = sorted(expr.values[0]), sorted(expr.values[1])
    if minute_field == "*" and hour_field == "*":
        return "every minute"
    if (step := _step(minute_field)) is not None and hour_field == "*":
        return f"every {step} minutes"
    if len(minutes) == 1 and hour_field == "*":
        return "every hour, on the hour" if minutes[0] == 0 else f"every hour at :{minutes[0]:02}"
    if len(minutes) == 1 and (step := _step(hour_field)) is not None:
        at = "on the hour" if minutes[0] == 0 else f"at :{minutes[0]:02}"
        return f"every {step} hours, {at}"
    if len(minutes) * len(hours) <= 4:
        return "at " + ", ".join(f"{h:02}:{m:02}" for h in hours for m in minutes)
    if len(minutes) == 1 and len(runs := _runs(hours)) == 1:
        first, last = runs[0]
        return f"every hour from {first:02}:{minutes[0]:02} to {last:02}:{minutes[0]:02}"
    if len(minutes) == 1:
        return f"at :{minutes[0]:02} past hours {_listing(expr.values[1])}"
    if minute_field == "*":
        return f"every minute of hours {_listing(expr.values[1])}"
    return f"at minutes {_listing(expr.values[0])} of hours {_listing(expr.values[1])}"


def _days(expr: CronExpression) -> str:
    dom, month, dow = expr.values[2], expr.values[3], expr.values[4]
    full = [len(v) == size for v, size in zip(expr.values, _FIELD_SIZES, strict=True)]
    parts = []
    on_days = []
    if (step := _step(expr.fields[2])) is not None:
        on_days.append(f"every {step} days of the month from the 1st")
    elif not full[2]:
        on_days.append(f"on day {_listing(dom)} of the month")
    if not full[4]:
        on_days.append(f"on {_listing(dow, _DAYS)}")
    if on_days:
        parts.append((" or " if expr.day_or else " and ").join(on_days))
    if not full[3]:
        parts.append(f"in {_listing(month, _MONTHS, offset=1)}")
    return " ".join(parts)


def describe_cron(expr: CronExpression) -> str:
    if expr.text in _MACROS:
        return _MACROS[expr.text]
    days, time_of_day = _days(expr), _time_of_day(expr)
    if not days:
        daily = time_of_day.startswith("at ") and time_of_day[3].isdigit()  # at 09:00
        return f"every day {time_of_day}" if daily else time_of_day
    return f"{time_of_day} {days}"


def describe(schedule: Schedule) -> str:
    """The schedule in words; a cron schedule's times are in its timezone."""
    if schedule.kind == "interval" and schedule.period is not None:
        return _every(schedule.period)
    if schedule.kind == "once" and schedule.delay is not None:
        return f"once, {_span(schedule.delay)} after it was created"
    if schedule.kind == "once" and schedule.at is not None:
        return f"once, at {schedule.text}"
    if schedule.cron is not None:
        return describe_cron(schedule.cron)
    return schedule.text  # pragma: no cover - every kind is handled above


def describe_schedule(text: str, timezone: str = "UTC") -> str:
    """`text` in words, or `text` itself when it does not parse (a stored schedule should)."""
    try:
        return describe(parse_schedule(text, timezone))
    except ScheduleError:
        return text
