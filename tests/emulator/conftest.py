"""Fixtures: NAS emulators and a fake agent, real uvicorn servers on loopback ports. The
helpers behind them live in `tests.support.emulator`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.emulator import (
    AgentReceiver,
    RunningEmulator,
    StartDrivenEmulator,
    StartEmulator,
    run_receiver,
    start_driven_emulators,
    start_emulators,
)
from tests.support.keys import nas_signing_key, write_private_key


@pytest.fixture
def emulator_key_file(tmp_path: Path) -> Path:
    """The session's NAS key in a key file: emulators load it instead of generating one."""
    return write_private_key(nas_signing_key(), tmp_path / "emulator-key.pem")


@pytest_asyncio.fixture
async def start_emulator(emulator_key_file: Path) -> AsyncIterator[StartEmulator]:
    """Start emulators with config overrides; every one is stopped at teardown."""
    async with start_emulators(emulator_key_file) as start:
        yield start


@pytest_asyncio.fixture
async def start_driven_emulator(emulator_key_file: Path) -> AsyncIterator[StartDrivenEmulator]:
    """Start emulators whose deliveries follow a manual clock; stopped at teardown."""
    async with start_driven_emulators(emulator_key_file) as start:
        yield start


@pytest_asyncio.fixture
async def emulator(start_emulator: StartEmulator) -> RunningEmulator:
    return await start_emulator()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[AgentReceiver]:
    async with run_receiver() as agent:
        yield agent
