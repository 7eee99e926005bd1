"""Cron across daylight-saving transitions: named transitions, then properties over many zones.

The rules (also in app/schedule/cron.py and contract/README.md):
- fixed-hour jobs: a slot in a gap runs once at the first instant after the jump (several
  slots in one gap collapse into that run); a slot in an overlap runs once, at its first
  occurrence;
- wildcard or step hour jobs keep their elapsed-time rhythm through both.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from app.schedule import next_fire_after, parse_schedule
from app.schedule.crontab import hour_is_fixed


def fires(expression: str, zone: str, after: datetime, count: int) -> list[datetime]:
    schedule = parse_schedule(expression, zone)
    result: list[datetime] = []
    for _ in range(count):
        nxt = next_fire_after(schedule, after, after)
        assert nxt is not None
        result.append(nxt)
        after = nxt
    return result


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "expression", "zone", "after", "expected"),
    [
        (
            "spring forward: 02:30 does not exist, runs at the jump (03:00 EDT)",
            "30 2 * * *",
            "America/New_York",
            utc(2026, 3, 7, 12),
            [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)],
        ),
        (
            "spring forward: four slots in the gap collapse into one run at the jump",
            "*/15 2 * * *",
            "America/New_York",
            utc(2026, 3, 7, 12),
            [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6), utc(2026, 3, 9, 6, 15)],
        ),
        (
            "fall back: 01:30 happens twice, runs once at the first (EDT)",
            "30 1 * * *",
            "America/New_York",
            utc(2026, 10, 31, 12),
            [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
        ),
        (
            "fall back: a wildcard-hour job runs in both 01:xx hours, every 30 real minutes",
            "*/30 * * * *",
            "America/New_York",
            utc(2026, 11, 1, 5),
            [
                utc(2026, 11, 1, 5, 30),
                utc(2026, 11, 1, 6),
                utc(2026, 11, 1, 6, 30),
                utc(2026, 11, 1, 7),
            ],
        ),
        (
            "spring forward: an hourly job goes 01:00 EST -> 03:00 EDT, one real hour",
            "0 * * * *",
            "America/New_York",
            utc(2026, 3, 8, 5, 30),
            [utc(2026, 3, 8, 6), utc(2026, 3, 8, 7), utc(2026, 3, 8, 8)],
        ),
        (
            "Lord Howe, 30-minute spring forward: 02:15 runs at 02:30 (+11:00)",
            "15 2 * * *",
            "Australia/Lord_Howe",
            utc(2026, 10, 3, 10),
            [utc(2026, 10, 3, 15, 30), utc(2026, 10, 4, 15, 15)],
        ),
        (
            "Lord Howe, 30-minute fall back: 01:45 runs once, at the first occurrence",
            "45 1 * * *",
            "Australia/Lord_Howe",
            utc(2026, 4, 4, 10),
            [utc(2026, 4, 4, 14, 45), utc(2026, 4, 5, 15, 15)],
        ),
        (
            "Havana, DST at midnight: 00:00 does not exist, runs at 01:00 CDT",
            "0 0 * * *",
            "America/Havana",
            utc(2026, 3, 7, 12),
            [utc(2026, 3, 8, 5), utc(2026, 3, 9, 4)],
        ),
        (
            "Apia skipped 30 December 2011: its 09:00 runs at the jump, 31 Dec 00:00 (+14)",
            "0 9 * * *",
            "Pacific/Apia",
            utc(2011, 12, 29, 12),
            [utc(2011, 12, 29, 19), utc(2011, 12, 30, 10), utc(2011, 12, 30, 19)],
        ),
        (
            "Europe/Paris, a 09:00 job stays at 09:00 local across the change (no fixed offset)",
            "0 9 * * *",
            "Europe/Paris",
            utc(2026, 3, 28, 12),
            [utc(2026, 3, 29, 7), utc(2026, 3, 30, 7)],
        ),
    ],
)
def test_named_transitions(
    name: str, expression: str, zone: str, after: datetime, expected: list[datetime]
) -> None:
    assert fires(expression, zone, after, len(expected)) == expected, name


def test_hour_field_classification() -> None:
    assert hour_is_fixed("0 9 * * *")
    assert hour_is_fixed("0 1,13 * * *")
    assert hour_is_fixed("0 9-17 * * *")
    assert not hour_is_fixed("0 * * * *")
    assert not hour_is_fixed("*/15 */2 * * *")


# -- properties over many zones and years ---------------------------------------------------

ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "America/Havana",
    "America/Santiago",
    "America/Sao_Paulo",
    "America/Asuncion",
    "America/St_Johns",
    "Europe/London",
    "Europe/Paris",
    "Europe/Moscow",
    "Asia/Beirut",
    "Asia/Tehran",
    "Asia/Jerusalem",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Australia/Adelaide",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Pacific/Apia",
    "Africa/Casablanca",
    "Antarctica/Troll",
    "UTC",
]

FIXED_HOUR = [
    "0 9 * * *",
    "30 2 * * *",
    "*/15 2 * * *",
    "0 0 * * *",
    "45 1 * * 0",
    "0 1,13 * * *",
    "5 0-3 * * *",
]
WILDCARD_HOUR = ["*/15 * * * *", "0 * * * *", "30 */2 * * *", "*/5 * * * *"]

instants = st.datetimes(
    min_value=datetime(1995, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    expression=st.sampled_from(FIXED_HOUR + WILDCARD_HOUR),
    after=instants,
)
def test_fires_are_strictly_increasing_whole_seconds(
    zone: str, expression: str, after: datetime
) -> None:
    previous = after
    for fire in fires(expression, zone, after, 4):
        assert fire > previous
        assert fire.microsecond == 0 and fire.utcoffset() == timedelta(0)
        previous = fire


def _matches(expression: str, local: datetime) -> bool:
    return bool(croniter.match(expression, local.replace(tzinfo=None)))


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(ZONES), expression=st.sampled_from(FIXED_HOUR), after=instants)
def test_fixed_hour_fires_match_the_expression_or_end_a_gap(
    zone: str, expression: str, after: datetime
) -> None:
    tz = ZoneInfo(zone)
    seen_local: set[datetime] = set()
    for fire in fires(expression, zone, after, 4):
        local = fire.astimezone(tz)
        if not _matches(expression, local):
            # Only allowed when a gap swallowed the slot: the offset changed in the last second.
            assert (fire - timedelta(seconds=1)).astimezone(tz).utcoffset() != local.utcoffset()
        # Once per local slot: never again at the second occurrence of a repeated hour.
        wall = local.replace(tzinfo=None)
        assert wall not in seen_local
        seen_local.add(wall)


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(ZONES), after=instants)
def test_wildcard_hour_keeps_elapsed_rhythm(zone: str, after: datetime) -> None:
    tz = ZoneInfo(zone)
    series = fires("*/15 * * * *", zone, after, 12)
    for a, b in itertools.pairwise(series):
        assert b - a == timedelta(minutes=15)
        assert _matches("*/15 * * * *", b.astimezone(tz))


@settings(max_examples=200, deadline=None)
@given(zone=st.sampled_from(ZONES), after=instants)
def test_next_fire_is_never_a_non_existent_local_time(zone: str, after: datetime) -> None:
    tz = ZoneInfo(zone)
    for fire in fires("30 2 * * *", zone, after, 3):
        local = fire.astimezone(tz).replace(tzinfo=None)
        # Round-trips: the wall time shown for the fire really exists in the zone.
        assert local.replace(tzinfo=tz).astimezone(UTC) == fire
