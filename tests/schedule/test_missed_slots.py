"""`missed_slots`: the slots from a due one up to now, how many, the last, and the next fire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.schedule import MissedSlots, Schedule, missed_slots, parse_schedule

ANCHOR = datetime(2030, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def minute(n: int) -> datetime:
    return ANCHOR + n * MINUTE


EVERY_MINUTE_CRON = parse_schedule("* * * * *")
EVERY_MINUTE = parse_schedule("every 1m")


# -- counts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", [EVERY_MINUTE, EVERY_MINUTE_CRON], ids=["interval", "cron"])
@pytest.mark.parametrize(
    ("now", "count", "last"),
    [
        (minute(1), 1, minute(1)),  # now is the slot itself
        (minute(1) + timedelta(seconds=59), 1, minute(1)),
        (minute(2), 2, minute(2)),  # the next slot is due too at its very instant
        (minute(10) + timedelta(seconds=30), 10, minute(10)),
    ],
)
def test_the_slots_up_to_now_are_counted(
    schedule: Schedule, now: datetime, count: int, last: datetime
) -> None:
    result = missed_slots(schedule, ANCHOR, minute(1), now)

    assert result == MissedSlots(count=count, last=last, next_after=last + MINUTE)
    assert result.next_after is not None and result.next_after > now


def test_an_interval_counts_in_its_phase_from_the_first_slot() -> None:
    every_5m = parse_schedule("every 5m")
    anchor = ANCHOR + timedelta(seconds=7)  # slots at :05:07, :10:07, …
    first = anchor + timedelta(minutes=5)

    result = missed_slots(every_5m, anchor, first, first + timedelta(minutes=23))

    assert result == MissedSlots(
        count=5, last=first + timedelta(minutes=20), next_after=first + timedelta(minutes=25)
    )


def test_cron_slots_follow_the_zone_through_a_dst_jump() -> None:
    """`0 * * * *` in New York keeps its elapsed-time rhythm across the spring-forward gap."""
    hourly = parse_schedule("0 * * * *", "America/New_York")
    first = datetime(2026, 3, 8, 5, tzinfo=UTC)  # 00:00 EST; 02:00 local does not exist

    result = missed_slots(hourly, first - timedelta(hours=1), first, first + timedelta(hours=4))

    assert result == MissedSlots(
        count=5,
        last=first + timedelta(hours=4),
        next_after=first + timedelta(hours=5),
    )


def test_a_daily_cron_counts_days() -> None:
    daily = parse_schedule("30 9 * * *", "Europe/Paris")
    first = datetime(2030, 1, 1, 8, 30, tzinfo=UTC)

    result = missed_slots(daily, ANCHOR, first, first + timedelta(days=6, hours=2))

    assert result == MissedSlots(
        count=7, last=first + timedelta(days=6), next_after=first + timedelta(days=7)
    )


# -- one-shots ------------------------------------------------------------------------------


@pytest.mark.parametrize("late", [timedelta(0), timedelta(days=30)])
def test_a_one_shot_is_one_slot_with_nothing_after(late: timedelta) -> None:
    once = parse_schedule("in 1h")
    at = ANCHOR + timedelta(hours=1)

    assert missed_slots(once, ANCHOR, at, at + late) == MissedSlots(
        count=1, last=at, next_after=None
    )


# -- the cap ----------------------------------------------------------------------------------


def test_counting_cron_slots_stops_at_the_cap() -> None:
    now = minute(10) + timedelta(seconds=30)

    result = missed_slots(EVERY_MINUTE_CRON, ANCHOR, minute(1), now, cap=4)

    # Four slots counted, the last of them the fourth; the next fire is still the first
    # one after now, not the fifth slot.
    assert result == MissedSlots(count=4, last=minute(4), next_after=minute(11), capped=True)


def test_a_count_that_reaches_the_cap_exactly_is_not_capped() -> None:
    result = missed_slots(EVERY_MINUTE_CRON, ANCHOR, minute(1), minute(4), cap=4)

    assert result == MissedSlots(count=4, last=minute(4), next_after=minute(5))


def test_the_default_cap_is_a_thousand() -> None:
    result = missed_slots(EVERY_MINUTE_CRON, ANCHOR, minute(1), minute(5000))

    assert (result.count, result.capped) == (1000, True)
    assert result.last == minute(1000)
    assert result.next_after == minute(5001)


def test_an_interval_is_counted_exactly_whatever_the_cap() -> None:
    """An interval's slots are counted arithmetically, so no cap is needed (or applied)."""
    result = missed_slots(EVERY_MINUTE, ANCHOR, minute(1), minute(5000), cap=4)

    assert result == MissedSlots(count=5000, last=minute(5000), next_after=minute(5001))
