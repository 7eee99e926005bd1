"""Schedule parsing and next-fire computation (pure: `now` is passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.schedule import ScheduleError, first_fire, next_fire_after, parse_schedule

NOW = datetime(2026, 11, 26, 12, 0, 0, 250_000, tzinfo=UTC)
NOW_CEIL = datetime(2026, 11, 26, 12, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "delay"),
    [("in 90s", 90), ("in 30m", 1800), ("in 2h", 7200), ("in 1d", 86400), ("IN 5S", 5)],
)
def test_delay_one_shot_fires_after_the_delay_on_a_whole_second(text: str, delay: int) -> None:
    schedule = parse_schedule(text)
    assert schedule.kind == "once"
    assert first_fire(schedule, NOW) == NOW_CEIL + timedelta(seconds=delay)
    assert next_fire_after(schedule, NOW, NOW_CEIL + timedelta(seconds=delay)) is None


def test_iso_one_shot_keeps_its_instant_in_utc() -> None:
    schedule = parse_schedule("2026-12-01T09:00:00+01:00")
    assert first_fire(schedule, NOW) == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_naive_iso_one_shot_is_read_in_the_job_zone() -> None:
    schedule = parse_schedule("2026-07-01T09:00:00", "Europe/Paris")
    assert first_fire(schedule, NOW) == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("every 30s", 30), ("every 5m", 300), ("every 2h", 7200), ("every 1d", 86400)],
)
def test_interval_first_fire_is_one_period_after_creation(text: str, seconds: int) -> None:
    schedule = parse_schedule(text)
    assert schedule.kind == "interval"
    assert first_fire(schedule, NOW) == NOW_CEIL + timedelta(seconds=seconds)


def test_interval_keeps_its_phase_after_a_late_fire() -> None:
    schedule = parse_schedule("every 30s")
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    # The fire due at +60 s was delivered 47 s late: the next slot is +120 s, not +107 s.
    late = anchor + timedelta(seconds=107)
    assert next_fire_after(schedule, anchor, late) == anchor + timedelta(seconds=120)
    assert next_fire_after(schedule, anchor, anchor + timedelta(seconds=60)) == anchor + timedelta(
        seconds=90
    )


def test_cron_in_utc() -> None:
    schedule = parse_schedule("*/15 * * * *")
    after = datetime(2026, 11, 26, 12, 7, 30, tzinfo=UTC)
    assert next_fire_after(schedule, NOW, after) == datetime(2026, 11, 26, 12, 15, tzinfo=UTC)


def test_cron_uses_the_iana_zone_not_a_fixed_offset() -> None:
    schedule = parse_schedule("0 9 * * *", "Europe/Paris")
    winter = next_fire_after(schedule, NOW, datetime(2026, 1, 10, 12, tzinfo=UTC))
    summer = next_fire_after(schedule, NOW, datetime(2026, 7, 10, 12, tzinfo=UTC))
    assert winter == datetime(2026, 1, 11, 8, 0, tzinfo=UTC)
    assert summer == datetime(2026, 7, 11, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "zone", "message"),
    [
        ("", "UTC", "empty"),
        ("every 0s", "UTC", "at least 1 second"),
        ("every 5 parsecs", "UTC", "cannot parse"),
        ("61 * * * *", "UTC", "invalid cron"),
        ("* * * *", "UTC", "cannot parse"),
        ("every 5m", "Mars/Olympus", "unknown timezone"),
        ("R * * * *", "UTC", "random or hashed"),
        ("H/5 * * * *", "UTC", "random or hashed"),
        ("every 99999999d", "UTC", "at most"),
        ("9999-12-31T23:59:59.5Z", "UTC", "out of range"),
    ],
)
def test_bad_schedules_say_what_is_wrong(text: str, zone: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(text, zone)


@given(
    period=st.integers(min_value=1, max_value=86400 * 3),
    offset=st.integers(min_value=0, max_value=86400 * 30),
)
def test_interval_next_is_strictly_after_in_phase_and_within_one_period(
    period: int, offset: int
) -> None:
    schedule = parse_schedule(f"every {period}s")
    anchor = datetime(2026, 3, 1, tzinfo=UTC)
    after = anchor + timedelta(seconds=offset)
    nxt = next_fire_after(schedule, anchor, after)
    assert nxt is not None
    assert nxt > after
    assert (nxt - anchor).total_seconds() % period == 0
    assert nxt - after <= timedelta(seconds=period)
    assert nxt.microsecond == 0


@given(
    after=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    )
)
def test_cron_next_is_strictly_after_and_whole_second(after: datetime) -> None:
    schedule = parse_schedule("*/7 3-5 * * *", "America/New_York")
    nxt = next_fire_after(schedule, after, after)
    assert nxt is not None and nxt > after and nxt.microsecond == 0 and nxt.second == 0


def test_a_cron_job_created_exactly_on_a_slot_starts_at_the_next_one() -> None:
    schedule = parse_schedule("* * * * *")
    on_the_minute = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert first_fire(schedule, on_the_minute) == datetime(2026, 3, 1, 12, 1, tzinfo=UTC)


def test_day_and_month_names_are_still_cron() -> None:
    assert parse_schedule("0 9 * * THU").kind == "cron"
    assert parse_schedule("0 9 1 MAR *").kind == "cron"
