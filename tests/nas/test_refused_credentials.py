"""NAS refusing the agent's credentials (401, 403): the client refreshes them and sends the call
once more; refused again, it fails with `CredentialsRefused`, which never shows a token.
NAS is an `httpx.MockTransport` handler; the credentials are a real token file."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from app.nas import (
    CredentialsRefused,
    CredentialsUnavailable,
    FileToken,
    NasClient,
    NasCredentials,
    NasError,
    RetryBudget,
)

pytestmark = pytest.mark.asyncio

PORTAL = "https://nas.example"
FAST = RetryBudget(attempts=4, max_seconds=5.0, initial_wait=0.001, max_wait=0.01)
FIRE_AT = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
OLD, NEW = "old-token-0001", "new-token-0002"


class Nas:
    """Accepts the bearer tokens in `accepted`; answers `refusal` to others. `on_request` runs
    first (a sidecar rotating the file while NAS answers, say)."""

    def __init__(self, *accepted: str, refusal: int = 401) -> None:
        self.accepted = set(accepted)
        self.refusal = refusal
        self.bearers: list[str] = []
        self.on_request: Callable[[], object] = lambda: None
        self.fail_next_with: int | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        bearer = request.headers["Authorization"].removeprefix("Bearer ")
        self.bearers.append(bearer)
        self.on_request()
        if self.fail_next_with is not None:
            status, self.fail_next_with = self.fail_next_with, None
            return httpx.Response(status)
        if bearer not in self.accepted:
            # An unkind NAS that echoes what it refused: the agent must not repeat it.
            detail = f"unknown agent token {bearer}"
            return httpx.Response(self.refusal, json={"error": "unauthorized", "detail": detail})
        return httpx.Response(200, json={"schedule_id": "sch-1"})


def client(nas: Nas, credentials: NasCredentials | str) -> NasClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(nas))
    return NasClient(http, PORTAL, credentials, budget=FAST)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "nas-token"
    path.write_text(OLD + "\n")
    return path


async def provision(nas_client: NasClient) -> str | None:
    return await nas_client.provision("job-a", FIRE_AT, "https://agent.example")


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refusal_refreshes_the_token_and_retries_once(
    token_file: Path, status: int
) -> None:
    """NAS revoked the old token and the sidecar has written the new one by the time NAS
    answers: the retry carries the new token, read without waiting for the file's mtime."""
    nas = Nas(NEW, refusal=status)
    nas_client = client(nas, FileToken(token_file))
    nas.on_request = lambda: token_file.write_text(NEW + "\n")

    assert await provision(nas_client) == "sch-1"
    assert nas.bearers == [OLD, NEW]

    assert await provision(nas_client) == "sch-1"  # the new token from now on
    assert nas.bearers[2:] == [NEW]


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_again_after_a_refresh_is_credentials_refused(
    token_file: Path, status: int
) -> None:
    nas = Nas(refusal=status)  # neither token is accepted
    nas_client = client(nas, FileToken(token_file))
    nas.on_request = lambda: token_file.write_text(NEW + "\n")

    with pytest.raises(CredentialsRefused) as caught:
        await provision(nas_client)

    assert nas.bearers == [OLD, NEW]  # one retry, not the whole retry budget
    assert caught.value.status_code == status
    assert caught.value.transient is False
    message = str(caught.value)
    assert message.startswith(
        f"POST /api/agent-cron/provision: NAS refused the agent's credentials (HTTP {status})"
        " after a refresh"
    )
    assert OLD not in message and NEW not in message
    assert "[redacted]" in message


async def test_a_refresh_that_gives_the_same_token_is_sent_once_more(token_file: Path) -> None:
    nas = Nas()
    with pytest.raises(CredentialsRefused) as caught:
        await provision(client(nas, FileToken(token_file)))
    assert nas.bearers == [OLD, OLD]  # NAS may only just have learnt it: one more try, no more
    assert "after a refresh" in str(caught.value)
    assert OLD not in str(caught.value)


async def test_a_fixed_token_refused_is_tried_once_more_then_refused() -> None:
    nas = Nas()
    with pytest.raises(CredentialsRefused) as caught:
        await client(nas, OLD).cancel("job-a")
    assert nas.bearers == [OLD, OLD]
    assert caught.value.status_code == 401


async def test_a_refresh_that_fails_keeps_the_refusal_visible(token_file: Path) -> None:
    nas = Nas()
    nas.on_request = token_file.unlink
    with pytest.raises(CredentialsRefused) as caught:
        await provision(client(nas, FileToken(token_file)))
    assert nas.bearers == [OLD]
    assert "(HTTP 401); refreshing them failed: CHRONOS_NAS_TOKEN_FILE: cannot read" in str(
        caught.value
    )


async def test_a_transient_failure_of_the_retry_is_retried_with_the_new_token(
    token_file: Path,
) -> None:
    nas = Nas(NEW)

    def rotate_then_fail_once() -> None:
        if token_file.read_text().strip() == OLD:
            token_file.write_text(NEW + "\n")
        elif len(nas.bearers) == 2:
            nas.fail_next_with = 503

    nas.on_request = rotate_then_fail_once
    assert await provision(client(nas, FileToken(token_file))) == "sch-1"
    assert nas.bearers == [OLD, NEW, NEW]


async def test_credentials_that_cannot_be_read_fail_before_calling_nas(tmp_path: Path) -> None:
    """Transient for the outbox (kept queued, retried with backoff), but not retried within
    the call: reading a missing file again at once would fail the same way."""
    nas = Nas(OLD)
    with pytest.raises(CredentialsUnavailable) as caught:
        await provision(client(nas, FileToken(tmp_path / "missing")))
    assert caught.value.transient
    assert nas.bearers == []


async def test_the_token_never_shows_in_another_refusal(token_file: Path) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        bearer = request.headers["Authorization"]
        return httpx.Response(422, json={"error": "invalid", "detail": f"bad fire_at ({bearer})"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(echo))
    nas_client = NasClient(http, PORTAL, FileToken(token_file), budget=FAST)
    with pytest.raises(NasError) as caught:
        await provision(nas_client)
    assert not isinstance(caught.value, CredentialsRefused)
    assert str(caught.value) == (
        "POST /api/agent-cron/provision: HTTP 422: bad fire_at (Bearer [redacted])"
    )
