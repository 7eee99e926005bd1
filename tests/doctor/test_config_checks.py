"""The settings checks of `chronos doctor` that need nothing running: callback URL and clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.doctor.checks import CheckStatus
from app.doctor.config import callback_url
from app.doctor.remote import NasClock, clock_skew
from app.settings import Settings


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("env", "url", "status", "said"),
    [
        ("prod", "https://agent.example.com", CheckStatus.OK, "agent.example.com/api/cron/fire"),
        ("prod", "https://agent.example.com/chronos/", CheckStatus.OK, "/chronos/api/cron/fire"),
        ("dev", "http://127.0.0.1:8080", CheckStatus.OK, "127.0.0.1:8080/api/cron/fire"),
        ("prod", "http://agent.example.com", CheckStatus.FAIL, "plain http in prod"),
        ("prod", "http://127.0.0.1:8080", CheckStatus.FAIL, "plain http in prod"),
        ("dev", "http://agent.example.com", CheckStatus.FAIL, "not loopback"),
        ("prod", "https://0.0.0.0:8080", CheckStatus.FAIL, "listen address"),
        ("prod", "https://agent.example.com/api/cron/fire", CheckStatus.FAIL, "NAS appends"),
        ("prod", "https://agent.example.com/?x=1", CheckStatus.FAIL, "query"),
        ("prod", "agent.example.com", CheckStatus.FAIL, "not an absolute"),
    ],
)
def test_callback_url(env: str, url: str, status: CheckStatus, said: str) -> None:
    check = callback_url(settings(env=env, callback_url=url))
    assert check.status is status, check
    assert said in check.reason
    assert check.ok == (status is CheckStatus.OK)
    if not check.ok:
        assert "CHRONOS_CALLBACK_URL" in check.fix


def _clock(skew_seconds: float) -> NasClock:
    ours = datetime(2026, 12, 7, 12, 0, 0, 400_000, tzinfo=UTC)
    theirs = (ours - timedelta(seconds=skew_seconds)).replace(microsecond=0)  # `Date`: seconds
    return NasClock(samples=[(ours, theirs)])


@pytest.mark.parametrize(
    ("skew", "status"),
    [(0, CheckStatus.OK), (-3, CheckStatus.OK), (8, CheckStatus.WARN), (-45, CheckStatus.FAIL)],
)
def test_clock_skew(skew: float, status: CheckStatus) -> None:
    check = clock_skew(settings(jwt_leeway_seconds=30), _clock(skew))
    assert check.status is status, check


def test_clock_skew_without_a_date_header_is_a_warning() -> None:
    check = clock_skew(settings(), NasClock())
    assert check.status is CheckStatus.WARN and "no Date header" in check.reason
