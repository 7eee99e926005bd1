"""`app.fire.policy.decide`: the misfire grace first, then the overlap policy; pure, no store."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.domain.states import Overlap, RunStatus
from app.fire.policy import Decision, decide
from tests.support.records import ANCHOR, job_record

FIRE_AT = ANCHOR + timedelta(hours=1)


def at(seconds: float) -> datetime:
    """`seconds` after FIRE_AT (negative: before it)."""
    return FIRE_AT + timedelta(seconds=seconds)


# -- misfire grace --------------------------------------------------------------------------


@pytest.mark.parametrize("lateness", [0, 1, 59, 60])
def test_a_fire_within_its_grace_runs(lateness: int) -> None:
    job = job_record(misfire_grace_seconds=60)

    assert decide(job, FIRE_AT, at(lateness), running=0, buffered=False) == Decision(
        RunStatus.RUNNING
    )


@pytest.mark.parametrize(
    ("grace", "lateness", "reason"),
    [
        (60, 61, "delivered 61s late, beyond the misfire grace of 60s"),
        (60, 3600, "delivered 3600s late, beyond the misfire grace of 60s"),
        (0, 1, "delivered 1s late, beyond the misfire grace of 0s"),
    ],
)
def test_a_fire_later_than_its_grace_is_missed(grace: int, lateness: float, reason: str) -> None:
    job = job_record(misfire_grace_seconds=grace)

    decision = decide(job, FIRE_AT, at(lateness), running=0, buffered=False)

    assert decision == Decision(RunStatus.MISSED, reason)
    assert not decision.starts_a_run


def test_a_grace_of_zero_misses_a_fire_late_by_a_fraction_of_a_second() -> None:
    job = job_record(misfire_grace_seconds=0)

    assert decide(job, FIRE_AT, at(0.5), running=0, buffered=False).status == RunStatus.MISSED


@pytest.mark.parametrize("early", [0.5, 1, 3600, 7 * 86400])
@pytest.mark.parametrize("grace", [0, 60])
def test_an_early_fire_is_never_late(grace: int, early: float) -> None:
    """NAS ahead of our clock: the lateness is negative, whatever the grace."""
    job = job_record(misfire_grace_seconds=grace)

    assert decide(job, FIRE_AT, at(-early), running=0, buffered=False) == Decision(
        RunStatus.RUNNING
    )


def test_without_a_grace_a_fire_is_never_missed() -> None:
    job = job_record(misfire_grace_seconds=None)

    decision = decide(job, FIRE_AT, at(365 * 86400), running=0, buffered=False)

    assert decision == Decision(RunStatus.RUNNING)


@pytest.mark.parametrize("overlap", list(Overlap))
def test_the_grace_is_checked_before_the_overlap_policy(overlap: Overlap) -> None:
    job = job_record(misfire_grace_seconds=10, overlap=overlap)

    decision = decide(job, FIRE_AT, at(11), running=1, buffered=False)

    assert decision.status == RunStatus.MISSED


# -- overlap -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overlap", "running", "buffered", "expected"),
    [
        # Nothing running: every policy runs the fire now, even with a fire left buffered.
        (Overlap.SKIP, 0, False, RunStatus.RUNNING),
        (Overlap.SKIP, 0, True, RunStatus.RUNNING),
        (Overlap.ALLOW, 0, False, RunStatus.RUNNING),
        (Overlap.ALLOW, 0, True, RunStatus.RUNNING),
        (Overlap.BUFFER_ONE, 0, False, RunStatus.RUNNING),
        (Overlap.BUFFER_ONE, 0, True, RunStatus.RUNNING),
        # A run going.
        (Overlap.SKIP, 1, False, RunStatus.SKIPPED),
        (Overlap.SKIP, 1, True, RunStatus.SKIPPED),
        (Overlap.SKIP, 3, False, RunStatus.SKIPPED),
        (Overlap.ALLOW, 1, False, RunStatus.RUNNING),
        (Overlap.ALLOW, 1, True, RunStatus.RUNNING),
        (Overlap.ALLOW, 3, False, RunStatus.RUNNING),
        (Overlap.BUFFER_ONE, 1, False, RunStatus.BUFFERED),
        (Overlap.BUFFER_ONE, 3, False, RunStatus.BUFFERED),
        (Overlap.BUFFER_ONE, 1, True, RunStatus.SKIPPED),
    ],
)
def test_the_overlap_policy(
    overlap: Overlap, running: int, buffered: bool, expected: RunStatus
) -> None:
    job = job_record(overlap=overlap)

    decision = decide(job, FIRE_AT, FIRE_AT, running=running, buffered=buffered)

    assert decision.status == expected
    assert decision.starts_a_run == (expected in (RunStatus.RUNNING, RunStatus.BUFFERED))


def test_the_reasons_of_skipped_and_buffered() -> None:
    skip = decide(job_record(overlap=Overlap.SKIP), FIRE_AT, FIRE_AT, running=1, buffered=False)
    buffer = job_record(overlap=Overlap.BUFFER_ONE)

    assert skip == Decision(RunStatus.SKIPPED, "the previous run is still going")
    assert decide(buffer, FIRE_AT, FIRE_AT, running=1, buffered=False) == Decision(
        RunStatus.BUFFERED, "waits for the run in progress"
    )
    assert decide(buffer, FIRE_AT, FIRE_AT, running=1, buffered=True) == Decision(
        RunStatus.SKIPPED, "the previous run is still going"
    )
    assert decide(job_record(), FIRE_AT, FIRE_AT, running=0, buffered=False).reason is None


# -- manual runs ---------------------------------------------------------------------------


@pytest.mark.parametrize("grace", [None, 0, 60])
def test_a_manual_run_has_no_lateness(grace: int | None) -> None:
    job = job_record(misfire_grace_seconds=grace)

    assert decide(job, None, at(86400), running=0, buffered=False) == Decision(RunStatus.RUNNING)


@pytest.mark.parametrize(
    ("overlap", "buffered", "expected"),
    [
        (Overlap.SKIP, False, RunStatus.SKIPPED),
        (Overlap.ALLOW, False, RunStatus.RUNNING),
        (Overlap.BUFFER_ONE, False, RunStatus.BUFFERED),
        (Overlap.BUFFER_ONE, True, RunStatus.SKIPPED),
    ],
)
def test_a_manual_run_honours_the_overlap_policy(
    overlap: Overlap, buffered: bool, expected: RunStatus
) -> None:
    job = job_record(overlap=overlap, misfire_grace_seconds=0)

    assert decide(job, None, at(86400), running=1, buffered=buffered).status == expected


@pytest.mark.parametrize(
    ("status", "starts"),
    [
        (RunStatus.RUNNING, True),
        (RunStatus.BUFFERED, True),
        (RunStatus.SKIPPED, False),
        (RunStatus.MISSED, False),
    ],
)
def test_only_running_and_buffered_count_toward_repeat(status: RunStatus, starts: bool) -> None:
    assert Decision(status).starts_a_run is starts
