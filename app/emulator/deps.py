"""What the emulator's routes depend on: its runtime, the arm registry, the calling agent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from app.clock import Clock, utc_now
from app.emulator.config import EmulatorConfig
from app.emulator.faults import FaultControl
from app.emulator.keys import SigningKey
from app.emulator.state import ArmRegistry
from app.emulator.tokens import AgentTokens
from app.emulator.variants import ListMode
from app.errors import NotFound, Unauthorized


@dataclass(frozen=True)
class EmulatorRuntime:
    """What the routes need, built once by `create_emulator_app` and kept on `app.state`.
    `faults` holds the agent-cron faults injected through `/_emulator/faults` (none at first);
    `agent_tokens` the agent tokens, built from the config on `clock` (issued now)."""

    config: EmulatorConfig
    signing_key: SigningKey
    registry: ArmRegistry
    faults: FaultControl = field(default_factory=FaultControl)
    clock: Clock = utc_now
    agent_tokens: AgentTokens = field(init=False)

    def __post_init__(self) -> None:
        tokens = AgentTokens(
            self.config.agent_tokens,
            ttl_seconds=self.config.agent_token_ttl_seconds,
            clock=self.clock,
        )
        object.__setattr__(self, "agent_tokens", tokens)  # frozen: set once, here


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
    return runtime.agent_tokens.authenticate(token)


AgentDep = Annotated[str, Depends(authenticate_agent)]


def require_list_endpoint(runtime: RuntimeDep) -> None:
    """With `NAS_EMULATOR_LIST=off`, the list endpoint does not exist: 404 like any unknown
    route, before authentication."""
    if runtime.config.list_endpoint is ListMode.OFF:
        raise NotFound("Not Found")
