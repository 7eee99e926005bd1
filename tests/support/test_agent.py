"""The test harness itself: `Agent.idle` waits for every run, and fails loudly when one is
still going at its deadline."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.agent import Agent

pytestmark = pytest.mark.asyncio

WAIT_FOR_GATE = (
    "import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.02)\n"
)


async def test_idle_fails_naming_the_runs_still_going_then_waits_for_them(
    agent: Agent, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    job = await agent.create_job(
        schedule="every 1h",
        target={"type": "command", "argv": [sys.executable, "-c", WAIT_FOR_GATE, str(gate)]},
    )
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202

    with pytest.raises(AssertionError) as caught:
        await agent.idle(timeout=0.2)
    assert str(caught.value) == (
        f"agent not idle after 0.2s: 1 run(s) still going: run:{job['id']}:{job['next_run_at']}"
    )

    gate.touch()
    await agent.idle()
    [run] = await agent.runs(job["id"])
    assert run["status"] == "succeeded"
