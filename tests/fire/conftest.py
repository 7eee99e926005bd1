from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.support.agent import Agent, RunningNas, run_agent, run_nas


@pytest_asyncio.fixture
async def nas(tmp_path: Path) -> AsyncIterator[RunningNas]:
    async with run_nas(tmp_path) as running_nas:
        yield running_nas


@pytest_asyncio.fixture
async def agent(database_url: str, nas: RunningNas) -> AsyncIterator[Agent]:
    async with run_agent(database_url, nas) as running_agent:
        yield running_agent
