"""The emulator's routes: the agent-cron API (hop 1), the public JWKS and health, and the
emulator-only inspection and control under `/_emulator`. Routers stay thin: authenticate,
parse, call the registry, shape the response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from app.emulator.deps import (
    AgentDep,
    FaultsDep,
    RegistryDep,
    RuntimeDep,
    require_list_endpoint,
)
from app.emulator.faults import AgentCronMode, FaultControl
from app.emulator.records import Arm, DeliveryRecord
from app.emulator.requests import parse_job_id, parse_provision_request, read_json_object
from app.emulator.schemas import (
    AGENT_ERRORS,
    LIST_OFF_ERROR,
    AgentCronFaultOut,
    AgentTokenBody,
    AgentTokenOut,
    ArmedListOut,
    ArmedOut,
    CancelBody,
    DeliveriesFaultOut,
    FaultsBody,
    FaultsOut,
    OkOut,
    ProvisionBody,
    ScheduleOut,
    json_body,
)
from app.emulator.state import ArmRegistry
from app.emulator.tokens import rotate
from app.emulator.variants import ProvisionAnswer
from app.errors import InvalidRequest

DEFAULT_LIST_LIMIT = 500
MAX_LIST_LIMIT = 1000


agent_cron_router = APIRouter(prefix="/api/agent-cron", tags=["agent-cron"])


def _faults_of(call: str) -> Callable[[FaultControl], Awaitable[None]]:
    """A dependency letting `call` through the injected agent-cron fault, if any."""

    async def admit(faults: FaultsDep) -> None:
        await faults.admit(call)

    return admit


@agent_cron_router.post(
    "/provision",
    response_model=ScheduleOut,
    responses=AGENT_ERRORS,
    openapi_extra=json_body(ProvisionBody),
    dependencies=[Depends(_faults_of("provision"))],
)
async def provision(
    request: Request, instance_id: AgentDep, runtime: RuntimeDep
) -> ScheduleOut | JSONResponse:
    """Arm (or re-arm) the one-shot fire of a job; upserted by (agent, job_id).
    With `NAS_EMULATOR_PROVISION_ANSWER=empty` the answer is `{}`."""
    provision_request = parse_provision_request(await read_json_object(request))
    result = runtime.registry.provision(instance_id, provision_request)
    if runtime.config.provision_answer is ProvisionAnswer.EMPTY:
        return JSONResponse({})
    return ScheduleOut(schedule_id=result.schedule_id)


@agent_cron_router.post(
    "/cancel",
    response_model=OkOut,
    responses=AGENT_ERRORS,
    openapi_extra=json_body(CancelBody),
    dependencies=[Depends(_faults_of("cancel"))],
)
async def cancel(request: Request, instance_id: AgentDep, registry: RegistryDep) -> OkOut:
    """Disarm a job and drop its pending deliveries; an unknown job is a no-op."""
    job_id = parse_job_id(await read_json_object(request))
    registry.cancel(instance_id, job_id)
    return OkOut(ok=True)


@agent_cron_router.get(
    "/list",
    response_model=ArmedListOut,
    response_model_exclude_none=True,
    responses={**AGENT_ERRORS, **LIST_OFF_ERROR},
    dependencies=[Depends(require_list_endpoint), Depends(_faults_of("list"))],
)
async def list_armed(
    instance_id: AgentDep,
    registry: RegistryDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = DEFAULT_LIST_LIMIT,
    cursor: Annotated[str | None, Query()] = None,
) -> ArmedListOut:
    """The calling agent's arms, including those whose delivery is still being retried.
    With `NAS_EMULATOR_LIST=off`, 404."""
    page = registry.list_armed(instance_id, limit=limit, cursor=cursor)
    return ArmedListOut(
        armed=[
            ArmedOut(
                job_id=arm.job_id,
                fire_at=arm.fire_at_utc.isoformat(),
                schedule_id=arm.schedule_id,
            )
            for arm in page.arms
        ],
        next_cursor=page.next_cursor,
    )


# -- public endpoints ----------------------------------------------------------------------------

public_router = APIRouter(tags=["public"])


@public_router.get("/.well-known/jwks.json")
async def jwks(runtime: RuntimeDep) -> JSONResponse:
    """The public key fire tokens are signed with."""
    return JSONResponse(
        runtime.signing_key.jwks(), headers={"Cache-Control": "public, max-age=300"}
    )


@public_router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


# -- emulator-only inspection and control --------------------------------------------------------

emulator_router = APIRouter(prefix="/_emulator", tags=["emulator-only"])


@emulator_router.get("/deliveries")
async def list_deliveries(registry: RegistryDep, job_id: str | None = None) -> dict[str, Any]:
    """Emulator-only: every delivery attempt, oldest first (the last 10,000 are kept)."""
    return {"deliveries": [_delivery_out(record) for record in registry.deliveries(job_id)]}


@emulator_router.get("/arms")
async def list_all_arms(registry: RegistryDep) -> dict[str, Any]:
    """Emulator-only: the arms of every agent, with their delivery state."""
    return {"arms": [_arm_out(arm) for arm in registry.all_arms()]}


@emulator_router.delete("/arms")
async def clear_arms(registry: RegistryDep) -> dict[str, int]:
    """Emulator-only: forget every arm of every agent (and its pending deliveries), as if NAS
    had lost its schedules."""
    return {"cleared": registry.clear()}


@emulator_router.get("/faults", response_model=FaultsOut)
async def show_faults(faults: FaultsDep, registry: RegistryDep) -> FaultsOut:
    """Emulator-only: the faults in force."""
    return _faults_out(faults, registry)


@emulator_router.post("/faults", response_model=FaultsOut)
async def inject_faults(body: FaultsBody, faults: FaultsDep, registry: RegistryDep) -> FaultsOut:
    """Emulator-only: make agent-cron calls fail (503) or wait, and/or hold deliveries, for
    `seconds` or until cleared; each fault replaces the one of its kind."""
    if body.agent_cron is None and body.deliveries is None:
        raise InvalidRequest("body: set agent_cron, deliveries or both")
    if body.calls is not None and body.agent_cron is None:
        raise InvalidRequest("calls: only applies with agent_cron")
    if body.agent_cron is not None:
        faults.set_agent_cron(
            AgentCronMode(body.agent_cron), seconds=body.seconds, calls=body.calls
        )
    if body.deliveries is not None:
        registry.hold_deliveries(body.seconds)
    return _faults_out(faults, registry)


@emulator_router.delete("/faults", response_model=FaultsOut)
async def clear_faults(faults: FaultsDep, registry: RegistryDep) -> FaultsOut:
    """Emulator-only: end every fault; held calls go on and held deliveries go out."""
    faults.clear()
    registry.release_deliveries()
    return _faults_out(faults, registry)


@emulator_router.post("/agent-tokens", response_model=AgentTokenOut)
async def issue_agent_token(
    runtime: RuntimeDep,
    body: AgentTokenBody | None = None,
    instance_id: Annotated[str | None, Query()] = None,
    revoke_others: Annotated[bool, Query()] = False,
) -> AgentTokenOut:
    """Emulator-only: issue a new agent token (written to `NAS_EMULATOR_AGENT_TOKEN_FILE` when
    set); older tokens keep working until they expire, unless `revoke_others`. The options may
    come in the body or the query."""
    options = body or AgentTokenBody()
    issued = await rotate(
        runtime.agent_tokens,
        instance_id=options.instance_id or instance_id,
        revoke_others=options.revoke_others or revoke_others,
        token_file=runtime.config.agent_token_file,
    )
    return AgentTokenOut(
        token=issued.token,
        expires_at=issued.expires_at.isoformat() if issued.expires_at else None,
        instance_id=issued.instance_id,
    )


def _faults_out(faults: FaultControl, registry: ArmRegistry) -> FaultsOut:
    agent_cron = faults.current()
    held, held_for = registry.deliveries_hold()
    return FaultsOut(
        agent_cron=None
        if agent_cron is None
        else AgentCronFaultOut(
            mode=agent_cron.mode.value,
            calls=sorted(agent_cron.calls),
            remaining_seconds=faults.remaining_seconds(agent_cron),
        ),
        deliveries=DeliveriesFaultOut(mode="hold", remaining_seconds=held_for) if held else None,
    )


def _delivery_out(record: DeliveryRecord) -> dict[str, Any]:
    return {
        "instance_id": record.instance_id,
        "job_id": record.job_id,
        "fire_at": record.fire_at,
        "schedule_id": record.schedule_id,
        "agent_callback_url": record.agent_callback_url,
        "attempt": record.attempt,
        "status_code": record.status_code,
        "response_body": record.response_body,
        "error": record.error,
        "delivered_at": record.delivered_at.isoformat(),
        "next_retry_at": record.next_retry_at.isoformat() if record.next_retry_at else None,
        "outcome": record.outcome.value,
    }


def _arm_out(arm: Arm) -> dict[str, Any]:
    return {
        "instance_id": arm.instance_id,
        "job_id": arm.job_id,
        "fire_at": arm.fire_at,
        "fire_at_utc": arm.fire_at_utc.isoformat(),
        "schedule_id": arm.schedule_id,
        "dedup_key": arm.dedup_key,
        "agent_callback_url": arm.agent_callback_url,
        "created_at": arm.created_at.isoformat(),
        "state": arm.state.value,
        "attempts": arm.attempts,
        "next_attempt_at": arm.next_attempt_at.isoformat() if arm.next_attempt_at else None,
    }
