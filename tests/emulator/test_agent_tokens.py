"""Agent tokens that expire (`NAS_EMULATOR_AGENT_TOKEN_TTL_SECONDS`) and their rotation
(`POST /_emulator/agent-tokens`), over HTTP: ASGI on a manual clock for expiry, real uvicorn
servers for rotation and the token file."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.emulator import EmulatorConfig, create_emulator_app
from tests.support import ManualUtcClock
from tests.support.emulator import (
    INSTANCE_A,
    INSTANCE_B,
    TOKEN_A,
    TOKEN_B,
    RunningEmulator,
    StartEmulator,
)

pytestmark = pytest.mark.asyncio

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
TTL = 60
LIST = "/api/agent-cron/list"
ROTATE = "/_emulator/agent-tokens"


@pytest_asyncio.fixture
async def nas_on_a_clock(
    emulator_key_file: Path,
) -> AsyncIterator[tuple[httpx.AsyncClient, ManualUtcClock]]:
    """An emulator whose agent tokens live `TTL` seconds on a manual clock, over ASGI."""
    clock = ManualUtcClock(T0)
    config = EmulatorConfig(
        public_url="http://nas.test",
        agent_tokens={TOKEN_A: INSTANCE_A},
        key_file=str(emulator_key_file),
        agent_token_ttl_seconds=TTL,
    )
    app = create_emulator_app(config, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://nas.test") as client:
        yield client, clock


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def rotate(client: httpx.AsyncClient, **options: Any) -> dict[str, Any]:
    response = await client.post(ROTATE, json=options or None)
    assert response.status_code == 200, response.text
    issued: dict[str, Any] = response.json()
    return issued


async def test_the_configured_token_expires_ttl_after_start(
    nas_on_a_clock: tuple[httpx.AsyncClient, ManualUtcClock],
) -> None:
    client, clock = nas_on_a_clock

    clock.advance(TTL - 1)
    fresh = await client.get(LIST, headers=bearer(TOKEN_A))
    clock.advance(1)
    expired = [
        await client.get(LIST, headers=bearer(TOKEN_A)),
        await client.post("/api/agent-cron/cancel", json={"job_id": "j"}, headers=bearer(TOKEN_A)),
    ]

    assert fresh.status_code == 200
    for response in expired:
        assert response.status_code == 401
        assert response.json() == {"error": "unauthorized", "detail": "agent token expired"}
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_rotated_token_lives_its_own_ttl_and_the_old_one_keeps_its_own(
    nas_on_a_clock: tuple[httpx.AsyncClient, ManualUtcClock],
) -> None:
    client, clock = nas_on_a_clock
    clock.advance(40)

    issued = await rotate(client)

    assert issued["instance_id"] == INSTANCE_A
    assert issued["expires_at"] == (T0 + timedelta(seconds=40 + TTL)).isoformat()
    assert issued["token"] not in (TOKEN_A, TOKEN_B) and len(issued["token"]) >= 32
    assert (await client.get(LIST, headers=bearer(TOKEN_A))).status_code == 200  # overlap
    clock.advance(TTL - 40)
    assert (await client.get(LIST, headers=bearer(TOKEN_A))).status_code == 401
    assert (await client.get(LIST, headers=bearer(issued["token"]))).status_code == 200
    clock.advance(40)
    refused = await client.get(LIST, headers=bearer(issued["token"]))
    assert refused.json()["detail"] == "agent token expired"


async def test_without_a_ttl_tokens_never_expire(emulator: RunningEmulator) -> None:
    issued = await rotate(emulator.client(None), instance_id=INSTANCE_A)

    assert issued["expires_at"] is None
    assert (await emulator.client(TOKEN_A).get(LIST)).status_code == 200
    assert (await emulator.client(issued["token"]).get(LIST)).status_code == 200


@pytest.mark.parametrize("where", ["body", "query"])
async def test_revoke_others_refuses_every_older_token_of_the_agent_only(
    emulator: RunningEmulator, where: str
) -> None:
    control = emulator.client(None)
    older = await rotate(control, instance_id=INSTANCE_A)
    if where == "body":
        response = await control.post(
            ROTATE, json={"instance_id": INSTANCE_A, "revoke_others": True}
        )
    else:
        response = await control.post(
            ROTATE, params={"instance_id": INSTANCE_A, "revoke_others": "true"}
        )
    newest = response.json()["token"]

    for token in (TOKEN_A, older["token"]):
        refused = await emulator.client(token).get(LIST)
        assert refused.status_code == 401
        assert refused.json() == {"error": "unauthorized", "detail": "agent token revoked"}
    assert (await emulator.client(newest).get(LIST)).status_code == 200
    assert (await emulator.client(TOKEN_B).get(LIST)).status_code == 200  # another agent


async def test_the_agent_must_be_named_when_there_are_several(emulator: RunningEmulator) -> None:
    control = emulator.client(None)

    unnamed = await control.post(ROTATE)
    unknown = await control.post(ROTATE, json={"instance_id": "nobody"})
    extra = await control.post(ROTATE, json={"instance_id": INSTANCE_B, "revoke": True})
    issued = await rotate(control, instance_id=INSTANCE_B)

    for response in (unnamed, unknown, extra):
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
    assert unnamed.json()["detail"].startswith("instance_id:")
    assert unknown.json()["detail"].startswith("instance_id:")
    assert issued["instance_id"] == INSTANCE_B
    listed_as_b = await emulator.client(issued["token"]).get(LIST)
    assert listed_as_b.status_code == 200


async def test_rotation_writes_the_token_file_atomically_and_revocation_needs_it(
    start_emulator: StartEmulator, tmp_path: Path
) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    token_file = folder / "nas-token"
    token_file.write_text(TOKEN_A + "\n")
    emulator = await start_emulator(
        agent_tokens={TOKEN_A: INSTANCE_A}, agent_token_file=str(token_file)
    )

    issued = await rotate(emulator.client(None), revoke_others=True)

    assert token_file.read_text() == issued["token"] + "\n"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert sorted(p.name for p in folder.iterdir()) == ["nas-token"]  # no temporary left
    assert (await emulator.client(TOKEN_A).get(LIST)).status_code == 401
    assert (await emulator.client(issued["token"]).get(LIST)).status_code == 200


async def test_a_token_that_cannot_be_written_is_not_issued(
    start_emulator: StartEmulator, tmp_path: Path
) -> None:
    emulator = await start_emulator(
        agent_tokens={TOKEN_A: INSTANCE_A}, agent_token_file=str(tmp_path / "gone" / "nas-token")
    )

    response = await emulator.client(None).post(ROTATE, json={"revoke_others": True})

    assert response.status_code == 500
    assert response.json()["error"] == "token_file_unwritable"
    assert response.json()["detail"].startswith("agent_token_file:")
    assert (await emulator.client(TOKEN_A).get(LIST)).status_code == 200  # nothing revoked


async def test_the_token_file_from_env_is_where_rotation_writes(
    start_emulator: StartEmulator, tmp_path: Path
) -> None:
    token_file = tmp_path / "nas-token"
    token_file.write_text("token-from-the-file\n")
    config = EmulatorConfig.from_env(
        {
            "NAS_EMULATOR_PUBLIC_URL": "http://127.0.0.1:9",
            "NAS_EMULATOR_AGENT_TOKEN_FILE": str(token_file),
            "NAS_EMULATOR_INSTANCE_ID": "dev",
        }
    )
    emulator = await start_emulator(
        agent_tokens=config.agent_tokens, agent_token_file=config.agent_token_file
    )

    issued = await rotate(emulator.client(None))

    assert issued["instance_id"] == "dev"
    assert token_file.read_text().strip() == issued["token"]
    assert (await emulator.client("token-from-the-file").get(LIST)).status_code == 200
