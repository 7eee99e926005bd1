"""`app.domain.jobs`: where a job goes after a fire (`advance_past`) and its next fire
(`next_run_after`); pure, no store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.jobs import advance_past, advanced_job, next_run_after
from app.domain.states import JobState
from tests.support.records import ANCHOR, job_record

HOUR = timedelta(hours=1)
HOURLY = job_record(schedule="every 1h")  # slots at ANCHOR + 1h, + 2h, …


def slot(n: int) -> datetime:
    """The hourly job's n-th slot."""
    return ANCHOR + n * HOUR


# -- advance_past ----------------------------------------------------------------------------


def test_an_on_time_fire_stands_for_its_slot_and_moves_to_the_next() -> None:
    assert advance_past(HOURLY, slot(1), slot(1)) == (1, slot(2))


@pytest.mark.parametrize("early", [timedelta(seconds=1), timedelta(minutes=59), 5 * HOUR])
def test_an_early_fire_advances_from_its_own_slot(early: timedelta) -> None:
    """NAS owns the delivery clock: an early fire is that slot, not one before it."""
    assert advance_past(HOURLY, slot(3), slot(3) - early) == (1, slot(4))


@pytest.mark.parametrize(
    ("late", "slots", "next_slot"),
    [
        (timedelta(seconds=1), 1, 2),
        (timedelta(minutes=59, seconds=59), 1, 2),
        (HOUR, 2, 3),  # exactly on the next slot: that one has passed too
        (3 * HOUR + timedelta(minutes=30), 4, 5),
        (100 * HOUR + timedelta(microseconds=1), 101, 102),
    ],
)
def test_a_late_fire_stands_for_the_slots_that_passed(
    late: timedelta, slots: int, next_slot: int
) -> None:
    assert advance_past(HOURLY, slot(1), slot(1) + late) == (slots, slot(next_slot))


def test_a_late_cron_fire_counts_its_slots_in_the_zone() -> None:
    job = job_record(schedule="30 9 * * *", timezone="Europe/Paris")  # 08:30 UTC in winter
    first = datetime(2030, 1, 1, 8, 30, tzinfo=UTC)

    count, nxt = advance_past(job, first, first + timedelta(days=2, hours=1))

    assert (count, nxt) == (3, datetime(2030, 1, 4, 8, 30, tzinfo=UTC))


@pytest.mark.parametrize("now_after", [timedelta(0), timedelta(seconds=1), 48 * HOUR])
def test_a_one_shot_is_exhausted_by_its_fire(now_after: timedelta) -> None:
    job = job_record(schedule="in 1h", repeat=1)

    assert advance_past(job, slot(1), slot(1) + now_after) == (1, None)


def test_an_absolute_one_shot_is_exhausted_even_when_fired_early() -> None:
    at = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    job = job_record(schedule=at.isoformat(), repeat=1)

    assert advance_past(job, at, at - timedelta(minutes=5)) == (1, None)


# -- next_run_after --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (ANCHOR - 10 * HOUR, slot(1)),  # before the job existed: its first slot
        (ANCHOR, slot(1)),
        (slot(1) - timedelta(seconds=1), slot(1)),
        (slot(1), slot(2)),  # strictly after
        (slot(1) + timedelta(microseconds=500_000), slot(2)),
        (slot(7) + timedelta(minutes=1), slot(8)),
    ],
)
def test_next_run_after_an_interval_is_the_next_slot_in_phase(
    after: datetime, expected: datetime
) -> None:
    assert next_run_after(HOURLY, after) == expected


def test_next_run_after_a_cron_is_computed_in_the_jobs_zone() -> None:
    job = job_record(schedule="0 9 * * *", timezone="America/New_York")

    assert next_run_after(job, datetime(2030, 1, 1, 15, tzinfo=UTC)) == datetime(
        2030, 1, 2, 14, tzinfo=UTC
    )
    assert next_run_after(job, datetime(2030, 7, 1, 15, tzinfo=UTC)) == datetime(
        2030, 7, 2, 13, tzinfo=UTC
    )


def test_next_run_after_a_one_shot() -> None:
    job = job_record(schedule="in 90s", repeat=1)
    at = ANCHOR + timedelta(seconds=90)

    assert next_run_after(job, ANCHOR) == at
    assert next_run_after(job, at - timedelta(seconds=1)) == at
    assert next_run_after(job, at) is None
    assert next_run_after(job, at + HOUR) is None


# -- advanced_job ----------------------------------------------------------------------------


def test_an_advanced_job_stays_scheduled_while_it_has_a_next_fire() -> None:
    now = slot(1)

    assert advanced_job(next_run_at=slot(2), runs_started=1, now=now) == {
        "next_run_at": slot(2),
        "runs_started": 1,
        "state": JobState.SCHEDULED,
        "completed_at": None,
        "updated_at": now,
    }
    assert advanced_job(next_run_at=None, runs_started=2, now=now) == {
        "next_run_at": None,
        "runs_started": 2,
        "state": JobState.COMPLETED,
        "completed_at": now,
        "updated_at": now,
    }
