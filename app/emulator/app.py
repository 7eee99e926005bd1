"""The NAS emulator as a FastAPI app: the agent-cron API, the JWKS, and emulator-only controls.

Routers stay thin: they authenticate, parse and validate the request, call the registry, and
shape the response. Arm state lives in `state.py`, delivery in `delivery.py`.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.clock import InvalidInstant, parse_instant
from app.emulator.config import EmulatorConfig
from app.emulator.delivery import DeliveryScheduler, default_http_client
from app.emulator.keys import SigningKey, load_signing_key
from app.emulator.state import (
    Arm,
    ArmRegistry,
    DeliveryRecord,
    ProvisionRequest,
    RetryPolicy,
)
from app.errors import InvalidRequest, Unauthorized
from app.http_errors import install_error_handlers

logger = logging.getLogger(__name__)

MAX_JOB_ID_LENGTH = 200
DEFAULT_LIST_LIMIT = 500
MAX_LIST_LIMIT = 1000


@dataclass(frozen=True)
class EmulatorRuntime:
    """What the routes need, built once by `create_emulator_app` and kept on `app.state`."""

    config: EmulatorConfig
    signing_key: SigningKey
    registry: ArmRegistry


def create_emulator_app(
    config: EmulatorConfig,
    *,
    http_client_factory: Callable[[], httpx.AsyncClient] | None = None,
) -> FastAPI:
    """Build the emulator app. The signing key is loaded (or generated) here, so a bad key file
    fails at once; the HTTP client and the delivery scheduler live in the lifespan."""
    signing_key = load_signing_key(config.key_file, config.kid)
    registry = ArmRegistry(
        RetryPolicy(
            initial_seconds=config.redelivery_initial_seconds,
            max_seconds=config.redelivery_max_seconds,
            max_attempts=config.redelivery_max_attempts,
        )
    )
    make_client = http_client_factory or (lambda: default_http_client(config))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        client = make_client()
        scheduler = DeliveryScheduler(
            registry=registry, signing_key=signing_key, config=config, http_client=client
        )
        scheduler.start()
        logger.info(
            "NAS emulator up",
            extra={
                "iss": config.public_url,
                "kid": signing_key.kid,
                "agents": len(config.agent_tokens),
            },
        )
        try:
            yield
        finally:
            await scheduler.stop()
            await client.aclose()

    app = FastAPI(
        title="NAS emulator",
        description=(
            "Emulates the NAS managed-cron API for development and tests. "
            "Routes under `/_emulator` exist only in the emulator."
        ),
        lifespan=lifespan,
    )
    app.state.emulator = EmulatorRuntime(config=config, signing_key=signing_key, registry=registry)
    install_error_handlers(app)
    app.include_router(agent_cron_router)
    app.include_router(public_router)
    app.include_router(emulator_router)
    return app


# -- dependencies ------------------------------------------------------------------------------


def get_runtime(request: Request) -> EmulatorRuntime:
    runtime: EmulatorRuntime = request.app.state.emulator
    return runtime


RuntimeDep = Annotated[EmulatorRuntime, Depends(get_runtime)]


def get_registry(runtime: RuntimeDep) -> ArmRegistry:
    return runtime.registry


RegistryDep = Annotated[ArmRegistry, Depends(get_registry)]


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


# -- schemas (responses and documentation) -------------------------------------------------------


class ErrorOut(BaseModel):
    error: str
    detail: str


class ProvisionBody(BaseModel):
    job_id: str = Field(min_length=1, max_length=MAX_JOB_ID_LENGTH)
    fire_at: str = Field(description="ISO 8601 instant with a UTC offset")
    agent_callback_url: str = Field(description="the agent's base URL; NAS appends /api/cron/fire")
    dedup_key: str = Field(description='"{job_id}:{fire_at}"')


class CancelBody(BaseModel):
    job_id: str = Field(min_length=1, max_length=MAX_JOB_ID_LENGTH)


class ScheduleOut(BaseModel):
    schedule_id: str


class OkOut(BaseModel):
    ok: bool


class ArmedOut(BaseModel):
    job_id: str
    fire_at: str = Field(description="ISO 8601 in UTC, with +00:00")
    schedule_id: str


class ArmedListOut(BaseModel):
    armed: list[ArmedOut]
    next_cursor: str | None = Field(default=None, description="present when more arms remain")


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_AGENT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "invalid_request: the detail names the field"},
    401: {"model": ErrorOut, "description": "unauthorized: missing or unknown bearer token"},
}


# -- agent-cron API (hop 1 of the contract) -------------------------------------------------------

agent_cron_router = APIRouter(prefix="/api/agent-cron", tags=["agent-cron"])


@agent_cron_router.post(
    "/provision",
    response_model=ScheduleOut,
    responses=_AGENT_ERRORS,
    openapi_extra=_json_body(ProvisionBody),
)
async def provision(request: Request, instance_id: AgentDep, registry: RegistryDep) -> ScheduleOut:
    """Arm (or re-arm) the one-shot fire of a job; upserted by (agent, job_id)."""
    provision_request = parse_provision_request(await _read_json_object(request))
    result = registry.provision(instance_id, provision_request)
    return ScheduleOut(schedule_id=result.schedule_id)


@agent_cron_router.post(
    "/cancel", response_model=OkOut, responses=_AGENT_ERRORS, openapi_extra=_json_body(CancelBody)
)
async def cancel(request: Request, instance_id: AgentDep, registry: RegistryDep) -> OkOut:
    """Disarm a job and drop its pending deliveries; an unknown job is a no-op."""
    job_id = _parse_job_id(await _read_json_object(request))
    registry.cancel(instance_id, job_id)
    return OkOut(ok=True)


@agent_cron_router.get(
    "/list",
    response_model=ArmedListOut,
    response_model_exclude_none=True,
    responses=_AGENT_ERRORS,
)
async def list_armed(
    instance_id: AgentDep,
    registry: RegistryDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = DEFAULT_LIST_LIMIT,
    cursor: Annotated[str | None, Query()] = None,
) -> ArmedListOut:
    """The calling agent's arms, including those whose delivery is still being retried."""
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


# -- request parsing -----------------------------------------------------------------------------


async def _read_json_object(request: Request) -> dict[str, Any]:
    try:
        payload = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest("body: must be a JSON object") from exc
    if not isinstance(payload, dict):
        raise InvalidRequest("body: must be a JSON object")
    return payload


def parse_provision_request(payload: dict[str, Any]) -> ProvisionRequest:
    """Validate a provision body; each error names the offending field."""
    job_id = _parse_job_id(payload)
    fire_at = payload.get("fire_at")
    fire_at_utc = instant_field(fire_at, "fire_at")
    assert isinstance(fire_at, str)
    callback_url = _parse_callback_url(payload.get("agent_callback_url"))
    dedup_key = payload.get("dedup_key")
    if not isinstance(dedup_key, str) or not dedup_key:
        raise InvalidRequest('dedup_key: required, a string "{job_id}:{fire_at}"')
    prefix = f"{job_id}:"
    if not dedup_key.startswith(prefix):
        raise InvalidRequest('dedup_key: must be "{job_id}:{fire_at}" and start with the job_id')
    try:
        dedup_instant = instant_field(dedup_key[len(prefix) :], "dedup_key")
    except InvalidRequest as exc:
        raise InvalidRequest(
            'dedup_key: must be "{job_id}:{fire_at}" with fire_at as ISO 8601 with an offset'
        ) from exc
    if dedup_instant != fire_at_utc:
        raise InvalidRequest(
            f"dedup_key: names the instant {dedup_instant.isoformat()}, "
            f"but fire_at is {fire_at_utc.isoformat()}"
        )
    return ProvisionRequest(
        job_id=job_id,
        fire_at=fire_at,
        fire_at_utc=fire_at_utc,
        agent_callback_url=callback_url,
        dedup_key=dedup_key,
    )


def instant_field(value: object, field: str) -> datetime:
    """An ISO 8601 timestamp with a UTC offset, as an aware UTC datetime."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{field}: required, an ISO 8601 timestamp with offset")
    try:
        return parse_instant(value)
    except InvalidInstant as exc:
        problem = {
            "format": "not an ISO 8601 timestamp: {!r}",
            "offset": "{!r} has no UTC offset; add one, e.g. 'Z' or '+02:00'",
            "range": "{!r} is out of range",
        }[exc.problem]
        raise InvalidRequest(f"{field}: " + problem.format(value)) from exc


def _parse_job_id(payload: dict[str, Any]) -> str:
    job_id = payload.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise InvalidRequest("job_id: required, a non-empty string")
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise InvalidRequest(f"job_id: longer than {MAX_JOB_ID_LENGTH} characters")
    return job_id


def _parse_callback_url(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest("agent_callback_url: required, an absolute http(s) URL")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise InvalidRequest(f"agent_callback_url: not a valid URL: {value!r}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"agent_callback_url: must be an absolute http(s) URL: {value!r}")
    if parts.query or parts.fragment:
        raise InvalidRequest(
            "agent_callback_url: must be a base URL without query or fragment "
            "(NAS appends /api/cron/fire)"
        )
    return value
