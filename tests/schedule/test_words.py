"""Schedules in words, as the dashboard shows them."""

from __future__ import annotations

import pytest

from app.schedule.words import describe_schedule


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        ("every 10s", "every 10 seconds"),
        ("every 5m", "every 5 minutes"),
        ("every 90s", "every 90 seconds"),
        ("every 1h", "every hour"),
        ("every 1d", "every day"),
        ("in 90s", "once, 90 seconds after it was created"),
        ("in 2h", "once, 2 hours after it was created"),
        ("2026-12-01T09:00:00+01:00", "once, at 2026-12-01T09:00:00+01:00"),
        ("* * * * *", "every minute"),
        ("*/15 * * * *", "every 15 minutes"),
        ("5 * * * *", "every hour at :05"),
        ("0 */2 * * *", "every 2 hours, on the hour"),
        ("30 2 * * *", "every day at 02:30"),
        ("0,30 8 * * *", "every day at 08:00, 08:30"),
        ("0 9 * * 1-5", "at 09:00 on Monday to Friday"),
        ("0 9 * * MON,WED", "at 09:00 on Monday, Wednesday"),
        ("0 9-17 * * *", "every hour from 09:00 to 17:00"),
        ("15 1,5,9,13,17 * * *", "at :15 past hours 1, 5, 9, 13, 17"),
        ("0,30 9-17 * * 1-5", "at minutes 0, 30 of hours 9 to 17 on Monday to Friday"),
        ("0 0 13 * 5", "at 00:00 on day 13 of the month or on Friday"),
        ("0 0 1 1,7 *", "at 00:00 on day 1 of the month in January, July"),
        ("@daily", "every day at 00:00"),
        ("@hourly", "every hour, on the hour"),
        ("@weekly", "every Sunday at 00:00"),
    ],
)
def test_words(schedule: str, words: str) -> None:
    assert describe_schedule(schedule, "Europe/Paris") == words


def test_an_unparsable_schedule_is_shown_as_written() -> None:
    assert describe_schedule("whenever") == "whenever"
