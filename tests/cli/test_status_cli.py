"""`chronos status` against the real agent served on loopback, with a real NAS emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.served_agent import served_agent
from tests.support.agent import RunningNas

pytestmark = pytest.mark.asyncio


async def test_status_table_and_json(database_url: str, nas: RunningNas, tmp_path: Path) -> None:
    async with served_agent(database_url, nas, tmp_path) as agent:
        table = await agent.chronos("status")
        raw = await agent.chronos("status", "--json")
    assert table.returncode == 0, table.stderr
    for label in ("version", "node-test", "ready", "migrations", "NAS credentials", "outbox"):
        assert label in table.stdout
    assert raw.returncode == 0, raw.stderr
    body = json.loads(raw.stdout)
    assert body["node_id"] == "node-test"
    assert body["readiness"] == {"ready": True, "reason": None}
    assert set(body) >= {"store", "nas", "outbox", "reconcile", "runs", "leases", "jobs"}


async def test_status_not_ready_exits_1(database_url: str, nas: RunningNas, tmp_path: Path) -> None:
    # The startup reconcile cannot finish while NAS refuses the agent's token.
    async with served_agent(
        database_url, nas, tmp_path, reconcile_on_startup=True, nas_token="not-known-to-nas"
    ) as agent:
        result = await agent.chronos("status")
    assert result.returncode == 1
    assert "startup reconcile not finished" in result.stdout


async def test_status_with_a_wrong_admin_token(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    async with served_agent(database_url, nas, tmp_path) as agent:
        result = await agent.chronos(
            "status", env=agent.env(CHRONOS_ADMIN_TOKEN="wrong-admin-token-0123456789")
        )
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr
