"""Cron expressions mean what crontab(5) means: named cases for each rule and each refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.schedule import ScheduleError, next_fire_after, parse_schedule, upcoming_fires
from app.schedule.crontab import CronError, parse_cron

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def fires(expression: str, zone: str, after: datetime, count: int) -> list[datetime]:
    schedule = parse_schedule(expression, zone)
    return upcoming_fires(schedule, ANCHOR, next_fire_after(schedule, ANCHOR, after), count)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_an_equal_range_is_that_single_value() -> None:
    # croniter alone reads `9-9` as "every hour".
    assert fires("0 9-9 * * *", "UTC", at(2026, 1, 1), 3) == [
        at(2026, 1, 1, 9),
        at(2026, 1, 2, 9),
        at(2026, 1, 3, 9),
    ]
    assert fires("0 9-9/4 * * *", "UTC", at(2026, 1, 1), 2) == [
        at(2026, 1, 1, 9),
        at(2026, 1, 2, 9),
    ]


def test_day_fields_are_anded_when_either_starts_with_a_star() -> None:
    # Odd-dated Fridays of January 2026: the 9th and the 23rd (the 2nd, 16th, 30th are even).
    assert fires("0 0 */2 * 5", "UTC", at(2026, 1, 1), 3) == [
        at(2026, 1, 9),
        at(2026, 1, 23),
        at(2026, 2, 13),
    ]
    # A plain `*` in day of month: every Friday.
    assert fires("0 0 * * FRI", "UTC", at(2026, 1, 1), 2) == [at(2026, 1, 2), at(2026, 1, 9)]


def test_day_fields_are_ored_when_both_are_restricted() -> None:
    # Every Friday and every 13th.
    assert fires("0 0 13 * 5", "UTC", at(2026, 1, 1), 4) == [
        at(2026, 1, 2),
        at(2026, 1, 9),
        at(2026, 1, 13),
        at(2026, 1, 16),
    ]
    # A restricted field that happens to cover every day makes every day run.
    assert fires("0 0 13 * 0-7", "UTC", at(2026, 1, 1), 2) == [at(2026, 1, 2), at(2026, 1, 3)]


def test_a_long_fall_back_keeps_every_hourly_fire() -> None:
    # Vostok went from +07 to +00 at 1994-01-31T17:00Z: local 17:00-23:59 of the 31st came
    # again, and an hourly job keeps firing every hour through it.
    got = fires("0 * * * *", "Antarctica/Vostok", at(1994, 1, 31, 16, 30), 5)
    assert got == [at(1994, 1, 31, 17) + timedelta(hours=h) for h in range(5)]


@pytest.mark.parametrize(
    ("macro", "same_as"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ],
)
def test_macros_fire_as_their_fields_and_are_kept_as_written(macro: str, same_as: str) -> None:
    schedule = parse_schedule(macro.upper(), "Europe/Paris")
    assert schedule.text == macro
    assert fires(macro, "Europe/Paris", at(2026, 3, 1), 4) == fires(
        same_as, "Europe/Paris", at(2026, 3, 1), 4
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("*/61 * * * *", "minute: step 61 is out of range 1-60"),
        ("*/0 * * * *", "minute: step 0 is out of range 1-60"),
        ("60 * * * *", "minute: 60 is out of range 0-59"),
        ("0 24 * * *", "hour: 24 is out of range 0-23"),
        ("0 0 32 * *", "day-of-month: 32 is out of range 1-31"),
        ("0 0 0 * *", "day-of-month: 0 is out of range 1-31"),
        ("0 0 * 13 *", "month: 13 is out of range 1-12 or JAN-DEC"),
        ("0 0 * * 8", "day-of-week: 8 is out of range 0-7 or SUN-SAT"),
        ("0 0 * * */8", "day-of-week: step 8 is out of range 1-7"),
        ("0 22-2 * * *", "hour: range 22-2 runs backwards; crontab ranges do not wrap"),
        ("0 0 * * FRI-MON", "write FRI-SAT,SUN-MON"),
        ("0 0 L * *", "day-of-month: 'L' is not a value"),
        ("0 0 * * 5#3", "day-of-week: '5#3' is not a crontab term"),
        ("0 0 ? * *", "day-of-month: '?' is not a crontab term"),
        ("0 0 15W * *", "day-of-month: '15W' is not a value"),
        ("0 0 * * MON,,FRI", "day-of-week: '' is not a crontab term"),
        ("@reboot", "unknown macro '@reboot'"),
        ("0 0 * * * *", "5 fields"),
    ],
)
def test_expressions_crontab_refuses_are_refused_naming_the_field(
    expression: str, message: str
) -> None:
    with pytest.raises(CronError, match=message.replace("?", r"\?")):
        parse_cron(expression)
    with pytest.raises(ScheduleError, match=r"invalid cron expression"):
        parse_schedule(expression)


def test_names_and_sunday_as_seven() -> None:
    assert parse_cron("0 0 * JAN-MAR/2 mon-fri").values[3:] == (
        frozenset({1, 3}),
        frozenset({1, 2, 3, 4, 5}),
    )
    assert parse_cron("0 0 * * 7").values[4] == frozenset({0})
    assert parse_cron("5/15 * * * *").values[0] == frozenset({5, 20, 35, 50})


def test_the_hour_field_alone_decides_fixed_hour() -> None:
    assert parse_cron("*/15 9 * * *").fixed_hour
    assert parse_cron("@daily").fixed_hour
    assert not parse_cron("@hourly").fixed_hour
    assert not parse_cron("0 */2 * * *").fixed_hour
