"""The real agent served by uvicorn on a loopback port in the test's event loop, for CLI
commands that talk HTTP to it; the CLI runs in a worker thread (`chronos_in_thread`) so the
event loop keeps serving meanwhile."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from app.main import create_app
from tests.cli.invoke import Ran, run_chronos
from tests.support.agent import ADMIN_TOKEN, RunningNas, agent_settings
from tests.support.servers import bind_loopback, running


@dataclass(frozen=True)
class ServedAgent:
    url: str
    cwd: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.cwd),
            "LANG": "C.UTF-8",
            "COLUMNS": "200",
            "CHRONOS_API_URL": self.url,
            "CHRONOS_ADMIN_TOKEN": ADMIN_TOKEN,
            **extra,
        }

    async def chronos(self, *args: str, env: dict[str, str] | None = None) -> Ran:
        return await chronos_in_thread(args, env=env or self.env(), cwd=self.cwd)


async def chronos_in_thread(args: Sequence[str], *, env: dict[str, str], cwd: Path) -> Ran:
    """`chronos ARGS` in a worker thread: servers in this event loop keep answering."""
    return await asyncio.to_thread(run_chronos, list(args), env=env, cwd=cwd)


@asynccontextmanager
async def served_agent(
    database_url: str, nas: RunningNas, cwd: Path, **overrides: Any
) -> AsyncIterator[ServedAgent]:
    app = create_app(agent_settings(database_url, nas, **overrides))
    sock = bind_loopback()
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    async with running(uvicorn.Server(config), sock):
        yield ServedAgent(url=f"http://127.0.0.1:{sock.getsockname()[1]}", cwd=cwd)
