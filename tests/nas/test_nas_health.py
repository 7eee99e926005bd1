"""`NasHealth`: what the NAS client's calls taught it, through `httpx.MockTransport`."""

from __future__ import annotations

import httpx
import pytest

from app.nas import CredentialsRefused, ListUnsupported, NasClient, NasError, RetryBudget

pytestmark = pytest.mark.asyncio

BUDGET = RetryBudget(attempts=1, max_seconds=1.0, initial_wait=0.0)


def client(answers: dict[str, httpx.Response]) -> NasClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return answers[request.url.path.rsplit("/", 1)[-1]]

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return NasClient(http, "https://nas.test", "agent-secret-token", budget=BUDGET)


async def test_nothing_known_before_a_call() -> None:
    health = client({}).health
    assert health.credentials_ok is None and health.list_supported is None
    assert health.last_success_at is None and health.last_error is None


async def test_success_then_refused_credentials() -> None:
    answers = {"list": httpx.Response(200, json={"armed": []})}
    nas = client(answers)
    await nas.list_armed()
    assert nas.health.credentials_ok is True and nas.health.list_supported is True
    assert nas.health.last_success_at is not None

    answers["list"] = httpx.Response(401, json={"detail": "bad agent-secret-token"})
    with pytest.raises(CredentialsRefused):
        await nas.list_armed()
    assert nas.health.credentials_ok is False
    assert nas.health.last_error is not None and "401" in nas.health.last_error
    assert "agent-secret-token" not in nas.health.last_error
    assert nas.health.last_error_at is not None


async def test_a_list_nas_does_not_have_is_an_answer() -> None:
    nas = client({"list": httpx.Response(404, json={"detail": "no route"})})
    with pytest.raises(ListUnsupported):
        await nas.list_armed()
    assert nas.health.list_supported is False
    assert nas.health.last_error is None and nas.health.credentials_ok is True


async def test_a_failed_provision_is_the_last_error() -> None:
    nas = client({"provision": httpx.Response(400, json={"detail": "fire_at in the past"})})
    from datetime import UTC, datetime

    with pytest.raises(NasError):
        await nas.provision("job-1", datetime(2026, 1, 1, tzinfo=UTC), "https://agent.test")
    assert nas.health.last_error is not None and "fire_at in the past" in nas.health.last_error
    assert nas.health.credentials_ok is None  # not a verdict on the token
