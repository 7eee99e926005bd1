"""Liveness and readiness: `/readyz` waits for the startup reconcile, fires never do."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.agent import Agent, NasFaults, RunningNas, run_agent
from tests.support.servers import wait_until

pytestmark = pytest.mark.asyncio


async def test_healthz_is_200(agent: Agent) -> None:
    response = await agent.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_once_the_startup_reconcile_is_done(
    database_url: str, nas: RunningNas
) -> None:
    async with run_agent(database_url, nas, reconcile_on_startup=True) as agent:

        async def ready() -> bool:
            return (await agent.client.get("/readyz")).status_code == 200

        await wait_until(ready, timeout=10, what="/readyz 200")
        assert (await agent.client.get("/readyz")).json() == {"status": "ready"}
        assert "list" in agent.faults.calls  # it really asked NAS


async def test_readyz_is_503_while_the_startup_reconcile_fails_and_fires_are_served(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    out = tmp_path / "ran.txt"
    faults = NasFaults()
    faults.mode = "down"
    async with run_agent(database_url, nas, faults=faults, reconcile_on_startup=True) as agent:
        assert (await agent.client.get("/healthz")).status_code == 200

        async def reason() -> str:
            response = await agent.client.get("/readyz")
            assert response.status_code == 503, response.text
            assert response.json()["status"] == "unavailable"
            return str(response.json()["reason"])

        assert "startup reconcile not finished" in await reason()

        async def failed_once() -> bool:
            return "list" in await reason() and "ConnectError" in await reason()

        await wait_until(failed_once, timeout=10, what="the startup reconcile to fail")

        # The admin API and the fire endpoint work while the startup reconcile keeps failing.
        job = await agent.create_job(
            schedule="in 1h",
            target={
                "type": "command",
                "argv": [sys.executable, "-c", f"open({str(out)!r}, 'w').write('ran')"],
            },
        )
        assert job["nas_pending"] == "provision"
        stale = await agent.fire(job["id"], "2030-01-01T00:00:00+00:00")
        assert stale.status_code == 200 and stale.json()["reason"] == "stale"
        fired = await agent.fire(job["id"], job["next_run_at"])
        assert fired.status_code == 202, fired.text
        assert fired.json()["status"] == "accepted"
        await agent.idle()
        assert out.read_text() == "ran"
        assert (await agent.client.get("/readyz")).status_code == 503

        faults.mode = None

        async def ready() -> bool:
            return (await agent.client.get("/readyz")).status_code == 200

        await wait_until(ready, timeout=15, what="/readyz 200 after NAS came back")
        assert (await agent.client.get("/readyz")).json() == {"status": "ready"}


async def test_readyz_without_startup_reconcile_is_ready_at_once(agent: Agent) -> None:
    response = await agent.client.get("/readyz")
    assert response.status_code == 200
    assert agent.faults.calls == []  # reconcile_on_startup=False: NAS was not asked
