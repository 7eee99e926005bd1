"""Pure logic of the emulator: backoff, Retry-After, fire-token claims, and the arm registry."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from app.emulator import EmulatorConfig
from app.emulator.delivery import fire_token_claims, fire_url
from app.emulator.records import ArmState, AttemptResult, Outcome, ProvisionRequest, RetryPolicy
from app.emulator.state import ArmRegistry
from app.emulator.variants import ConsumeMode
from app.headers import parse_retry_after

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def request(job_id: str, fire_at: datetime) -> ProvisionRequest:
    return ProvisionRequest(
        job_id=job_id,
        fire_at=fire_at.isoformat(),
        fire_at_utc=fire_at,
        agent_callback_url="http://agent",
        dedup_key=f"{job_id}:{fire_at.isoformat()}",
    )


def registry(clock: FakeClock, max_attempts: int = 3) -> ArmRegistry:
    policy = RetryPolicy(initial_seconds=1, max_seconds=8, max_attempts=max_attempts)
    return ArmRegistry(policy, clock=clock)


def ok(at: datetime = T0) -> AttemptResult:
    return AttemptResult(started_at=at, status_code=204)


def failed(at: datetime = T0, retry_after: float | None = None) -> AttemptResult:
    return AttemptResult(started_at=at, status_code=503, retry_after=retry_after)


# -- backoff ------------------------------------------------------------------------------------


def test_backoff_doubles_with_jitter_up_to_the_maximum() -> None:
    policy = RetryPolicy(initial_seconds=1, max_seconds=8, max_attempts=20, rng=random.Random(7))

    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (60, 8), (10_000, 8)]:
        delays = [policy.delay_after(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), attempt
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not constant


def test_retry_after_wins_over_backoff_but_is_capped() -> None:
    policy = RetryPolicy(initial_seconds=1, max_seconds=8, max_attempts=20)

    assert policy.delay_after(1, retry_after=5) == 5
    assert policy.delay_after(1, retry_after=3600) == 8
    assert policy.delay_after(4, retry_after=0) == 0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 2 ", 2.0),
        ("0", 0.0),
        ("Tue, 01 Jan 2030 09:00:30 GMT", 30.0),
        ("Tue, 01 Jan 2030 08:00:00 GMT", 0.0),
        ("-3", None),
        ("soon", None),
        ("inf", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, T0) == expected


# -- fire tokens --------------------------------------------------------------------------------


def test_fire_token_claims() -> None:
    config = EmulatorConfig(
        public_url="https://nas.example/", agent_tokens={"t": "inst"}, token_ttl_seconds=90
    )

    claims = fire_token_claims(
        config=config, instance_id="inst", job_id="j", fire_at="2030-01-01T10:00:00+01:00", now=T0
    )
    again = fire_token_claims(config=config, instance_id="inst", job_id="j", fire_at="x", now=T0)

    assert claims | {"jti": None} == {
        "iss": "https://nas.example",
        "aud": "agent:inst",
        "purpose": "cron_fire",
        "iat": int(T0.timestamp()),
        "nbf": int(T0.timestamp()),
        "exp": int(T0.timestamp()) + 90,
        "jti": None,
        "job_id": "j",
        "fire_at": "2030-01-01T10:00:00+01:00",
    }
    assert claims["jti"] != again["jti"]
    without = fire_token_claims(config=config, instance_id="inst", job_id="j", fire_at=None, now=T0)
    assert "fire_at" not in without and without["job_id"] == "j"


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://agent:8080", "http://agent:8080/api/cron/fire"),
        ("http://agent:8080/", "http://agent:8080/api/cron/fire"),
        ("https://agent.example/tenant/", "https://agent.example/tenant/api/cron/fire"),
    ],
)
def test_fire_url_appends_the_fire_path(base: str, url: str) -> None:
    assert fire_url(base) == url


# -- registry -----------------------------------------------------------------------------------


def test_arms_become_due_in_fire_at_order() -> None:
    clock = FakeClock()
    arms = registry(clock)
    arms.provision("i", request("late", T0 + timedelta(seconds=20)))
    arms.provision("i", request("early", T0 + timedelta(seconds=10)))

    assert arms.next_due_at() == T0 + timedelta(seconds=10)
    assert arms.take_due(T0 + timedelta(seconds=9)) == []
    assert [t.job_id for t in arms.take_due(T0 + timedelta(seconds=10))] == ["early"]
    assert arms.next_due_at() == T0 + timedelta(seconds=20)


def test_listeners_hear_about_changes() -> None:
    clock = FakeClock()
    arms = registry(clock)
    calls: list[None] = []
    arms.add_listener(lambda: calls.append(None))

    arms.provision("i", request("j", T0))
    arms.provision("i", request("j", T0))  # no-op: nothing to hear
    arms.cancel("i", "j")
    arms.cancel("i", "j")  # unknown: nothing to hear
    arms.clear()

    assert len(calls) == 3


def test_a_failed_attempt_is_rescheduled_then_abandoned() -> None:
    clock = FakeClock()
    arms = registry(clock, max_attempts=2)
    arms.provision("i", request("j", T0))

    (first,) = arms.take_due(T0)
    assert arms.all_arms()[0].state is ArmState.DELIVERING
    record = arms.complete_attempt(first, failed(retry_after=4))
    assert record.outcome is Outcome.RETRYING
    assert record.next_retry_at == T0 + timedelta(seconds=4)
    assert arms.all_arms()[0].state is ArmState.RETRYING
    assert arms.take_due(T0 + timedelta(seconds=3)) == []

    (second,) = arms.take_due(T0 + timedelta(seconds=4))
    assert second.attempt == 2
    assert arms.complete_attempt(second, failed()).outcome is Outcome.ABANDONED
    assert arms.all_arms() == []
    assert arms.next_due_at() is None


def test_a_success_removes_the_arm() -> None:
    arms = registry(FakeClock())
    arms.provision("i", request("j", T0))

    (ticket,) = arms.take_due(T0)

    assert arms.list_armed("i", limit=10).arms[0].job_id == "j"  # listed while delivering
    assert arms.complete_attempt(ticket, ok()).outcome is Outcome.DELIVERED
    assert arms.list_armed("i", limit=10).arms == []


def test_a_late_result_of_a_replaced_arm_does_not_touch_the_new_arm() -> None:
    clock = FakeClock()
    arms = registry(clock)
    arms.provision("i", request("j", T0))
    (old_ticket,) = arms.take_due(T0)
    new = arms.provision("i", request("j", T0 + timedelta(hours=1)))

    record = arms.complete_attempt(old_ticket, failed())

    assert record.outcome is Outcome.CANCELLED
    assert record.next_retry_at is None
    (arm,) = arms.all_arms()
    assert (arm.schedule_id, arm.attempts, arm.state) == (new.schedule_id, 0, ArmState.SCHEDULED)
    assert arms.next_due_at() == T0 + timedelta(hours=1)


@pytest.mark.parametrize(("consume", "left"), [(ConsumeMode.SCHEDULE, 1), (ConsumeMode.JOB, 0)])
def test_consume_decides_whether_a_success_removes_an_arm_made_meanwhile(
    consume: ConsumeMode, left: int
) -> None:
    arms = registry(FakeClock())
    arms.provision("i", request("j", T0))
    (ticket,) = arms.take_due(T0)
    arms.provision("i", request("j", T0 + timedelta(hours=1)))
    arms.provision("i", request("other", T0 + timedelta(hours=1)))

    assert arms.complete_attempt(ticket, ok(), consume=consume).outcome is Outcome.DELIVERED
    assert len([a for a in arms.all_arms() if a.job_id == "j"]) == left
    assert [a.job_id for a in arms.all_arms() if a.job_id != "j"] == ["other"]


def test_a_released_ticket_is_due_again() -> None:
    clock = FakeClock()
    arms = registry(clock)
    arms.provision("i", request("j", T0))
    (ticket,) = arms.take_due(T0)
    clock.now = T0 + timedelta(seconds=5)

    arms.release(ticket)

    (again,) = arms.take_due(clock.now)
    assert again.attempt == 1


def test_many_replacements_leave_one_live_due_entry() -> None:
    arms = registry(FakeClock())
    for minute in range(1, 1000):
        arms.provision("i", request("j", T0 + timedelta(minutes=minute)))

    assert len(arms._due) <= 2 + 64 + 1  # entries of replaced arms get compacted away
    tickets = arms.take_due(T0 + timedelta(days=1))

    assert [t.fire_at for t in tickets] == [(T0 + timedelta(minutes=999)).isoformat()]


def test_delivery_log_is_bounded() -> None:
    policy = RetryPolicy(initial_seconds=1, max_seconds=1, max_attempts=1)
    arms = ArmRegistry(policy, clock=FakeClock(), delivery_log_size=3)
    for n in range(5):
        arms.provision("i", request(f"j{n}", T0))
    for ticket in arms.take_due(T0):
        arms.complete_attempt(ticket, ok())

    assert [r.job_id for r in arms.deliveries()] == ["j2", "j3", "j4"]
