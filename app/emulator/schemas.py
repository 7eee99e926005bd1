"""Bodies of the emulator's API, for validation messages and its OpenAPI document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.emulator.requests import MAX_JOB_ID_LENGTH


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


class FaultsBody(BaseModel):
    """Faults to put in force (emulator only); each replaces the fault of its kind."""

    model_config = ConfigDict(extra="forbid")

    agent_cron: Literal["unavailable", "hold"] | None = Field(
        default=None,
        description="`unavailable`: agent-cron calls get 503 with Retry-After; `hold`: they "
        "wait until the fault ends, then are served",
    )
    calls: list[Literal["provision", "cancel", "list"]] | None = Field(
        default=None, min_length=1, description="the agent-cron calls affected (default: all)"
    )
    deliveries: Literal["hold"] | None = Field(
        default=None, description="`hold`: no delivery attempt starts until the fault ends"
    )
    seconds: float | None = Field(
        default=None,
        gt=0,
        le=86400,
        description="how long the faults last (default: until cleared)",
    )


class AgentCronFaultOut(BaseModel):
    mode: Literal["unavailable", "hold"]
    calls: list[str]
    remaining_seconds: float | None = Field(description="null: until cleared")


class DeliveriesFaultOut(BaseModel):
    mode: Literal["hold"]
    remaining_seconds: float | None = Field(description="null: until cleared")


class FaultsOut(BaseModel):
    agent_cron: AgentCronFaultOut | None
    deliveries: DeliveriesFaultOut | None


class AgentTokenBody(BaseModel):
    """Options of `POST /_emulator/agent-tokens` (emulator only); the body may be left out."""

    model_config = ConfigDict(extra="forbid")

    instance_id: str | None = Field(
        default=None, description="the agent to issue a token for (default: the only one)"
    )
    revoke_others: bool = Field(
        default=False, description="revoke every other token of that agent at once"
    )


class AgentTokenOut(BaseModel):
    token: str
    expires_at: str | None = Field(description="ISO 8601 in UTC; null: never expires")
    instance_id: str


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


AGENT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "invalid_request: the detail names the field"},
    401: {
        "model": ErrorOut,
        "description": "unauthorized: missing, unknown, expired or revoked bearer token",
    },
}
LIST_OFF_ERROR: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "not_found: NAS_EMULATOR_LIST=off, no list endpoint"},
}
