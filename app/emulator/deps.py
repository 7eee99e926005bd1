"""What the emulator's routes depend on: its runtime, the arm registry, the calling agent."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from app.emulator.config import EmulatorConfig
from app.emulator.faults import FaultControl
from app.emulator.keys import SigningKey
from app.emulator.state import ArmRegistry
from app.errors import Unauthorized


@dataclass(frozen=True)
class EmulatorRuntime:
    """What the routes need, built once by `create_emulator_app` and kept on `app.state`.
    `faults` holds the agent-cron faults injected through `/_emulator/faults` (none at first)."""

    config: EmulatorConfig
    signing_key: SigningKey
    registry: ArmRegistry
    faults: FaultControl = field(default_factory=FaultControl)


def get_runtime(request: Request) -> EmulatorRuntime:
    runtime: EmulatorRuntime = request.app.state.emulator
    return runtime


RuntimeDep = Annotated[EmulatorRuntime, Depends(get_runtime)]


def get_registry(runtime: RuntimeDep) -> ArmRegistry:
    return runtime.registry


RegistryDep = Annotated[ArmRegistry, Depends(get_registry)]


def get_faults(runtime: RuntimeDep) -> FaultControl:
    return runtime.faults


FaultsDep = Annotated[FaultControl, Depends(get_faults)]


def authenticate_agent(request: Request, runtime: RuntimeDep) -> str:
    """The instance id of the agent whose bearer token authorises this request."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    token = credentials.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token")
    presented = token.encode("utf-8")
    instance_id: str | None = None
    # Compare against every token, in constant time, whatever matches first.
    for known, candidate in runtime.config.agent_tokens.items():
        if hmac.compare_digest(known.encode("utf-8"), presented):
            instance_id = candidate
    if instance_id is None:
        raise Unauthorized("unknown bearer token")
    return instance_id


AgentDep = Annotated[str, Depends(authenticate_agent)]
