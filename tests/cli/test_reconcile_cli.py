"""`chronos reconcile` against the real agent served on loopback: a reconcile slower than
the CLI's timeout for admin calls is waited for and reported, never "cannot reach"."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from app.cli.reconcile import poll_progress, with_progress
from tests.cli.served_agent import ServedAgent, served_agent
from tests.support.agent import ADMIN_TOKEN, RunningNas

pytestmark = pytest.mark.asyncio

HOLD_SECONDS = 2.5


async def hold_list(nas: RunningNas, seconds: float = HOLD_SECONDS) -> None:
    """NAS keeps the agent's `list` call waiting this long: the reconcile is that slow."""
    async with nas.client() as client:
        held = {"agent_cron": "hold", "calls": ["list"], "seconds": seconds}
        (await client.post("/_emulator/faults", json=held)).raise_for_status()


async def test_a_slow_reconcile_is_reported_as_done(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    async with served_agent(database_url, nas, tmp_path) as agent:
        # Admin calls time out after 1 s here; the reconcile takes 2.5 s.
        slow_env = agent.env(CHRONOS_API_TIMEOUT_SECONDS="1")
        await hold_list(nas)
        result = await agent.chronos("reconcile", env=slow_env)
        assert result.returncode == 0, result.stderr
        assert "cannot reach" not in result.stderr
        assert json.loads(result.stdout)["ok"] is True

        # The same reconcile, asked with the 1 s timeout the other admin calls keep, times out.
        await hold_list(nas)
        with pytest.raises(httpx.ReadTimeout):
            await asyncio.to_thread(
                httpx.post,
                f"{agent.url}/api/reconcile",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=1,
            )


async def test_progress_is_polled_from_the_status(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    async with served_agent(database_url, nas, tmp_path) as agent:
        await hold_list(nas)
        task = asyncio.create_task(_reconcile_with_bar(agent))
        progress = None
        with httpx.Client(
            base_url=agent.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as client:
            for _ in range(100):
                progress = await asyncio.to_thread(poll_progress, client)
                if progress is not None:
                    break
                await asyncio.sleep(0.05)
        report = await task
    assert progress is not None and progress["phase"] == "listing"
    assert report["ok"] is True


async def _reconcile_with_bar(agent: ServedAgent) -> dict[str, object]:
    report: dict[str, object] = await asyncio.to_thread(with_progress, agent.url, ADMIN_TOKEN)
    return report


async def test_an_agent_out_of_reach_is_still_cannot_reach(tmp_path: Path) -> None:
    from tests.cli.served_agent import chronos_in_thread
    from tests.support.servers import free_port

    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CHRONOS_API_URL": f"http://127.0.0.1:{free_port()}",
        "CHRONOS_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    result = await chronos_in_thread(["reconcile"], env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot reach the agent" in result.stderr
