"""`POST /api/cron/fire`: hop 3 of the contract, called by NAS."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from app.api.deps import FiresDep, ServicesDep, SettingsDep
from app.api.limits import read_body_limited
from app.errors import Draining
from app.fire.observe import observed_fire
from app.validation import NO_NUL_PATTERN

router = APIRouter(tags=["fire"])

_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_FIRE_ANSWER = {
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FireAnswer"}}}
}

# The body is read raw (size-limited, verified, then parsed from the same bytes), so it is
# declared here rather than through a model parameter.
_FIRE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["job_id"],
                "properties": {
                    "job_id": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 200,
                        "pattern": NO_NUL_PATTERN,
                    },
                    "fire_at": {
                        "type": "string",
                        "format": "date-time",
                        "description": (
                            "ISO 8601 with a UTC offset; compared as an instant. When absent,"
                            " the fire stands for the token's fire_at claim, else the job's"
                            " next fire if it is due within CHRONOS_EARLY_FIRE_SECONDS"
                            " (otherwise 200 ignored, reason not_due)"
                        ),
                    },
                },
            }
        }
    },
}


def refuse_while_draining(services: ServicesDep, settings: SettingsDep) -> None:
    """A draining agent (SIGTERM) admits nothing: NAS retries, on a replica that stays."""
    if services.drain.draining:
        services.metrics.fire_answered("unavailable", None)
        raise Draining(
            "the agent is shutting down; the fire was not admitted: retry",
            retry_after=settings.retry_after_seconds,
        )


@router.post(
    "/api/cron/fire",
    summary="Receive a fire from NAS",
    status_code=202,
    openapi_extra={"requestBody": _FIRE_BODY, "security": [{"NasFireToken": []}]},
    responses={
        200: {
            "description": "ignored, duplicate, missed or skipped: delivery ends",
            **_FIRE_ANSWER,
        },
        202: {
            "description": "accepted or buffered: admitted durably, next fire armed",
            **_FIRE_ANSWER,
        },
        400: {"description": "malformed body; the field is named in `detail`", **_ERROR},
        401: {"description": "missing, invalid, expired or wrong-purpose token", **_ERROR},
        413: {"description": "body over 64 KiB", **_ERROR},
        503: {
            "description": (
                "admitted but next fire not armed yet, store down, the agent is draining"
                " (error `draining`) or over capacity (error `overloaded`; in both nothing was"
                " read or admitted): retry after `Retry-After`"
            ),
            **_ERROR,
        },
    },
    dependencies=[Depends(refuse_while_draining)],
)
async def receive_fire(
    request: Request, fires: FiresDep, services: ServicesDep, settings: SettingsDep
) -> JSONResponse:
    with observed_fire(services.metrics) as answered:
        async with services.fire_gate.turn():
            raw = await read_body_limited(request, settings.max_fire_body_bytes)
            answer = await fires.receive(request.headers.get("authorization"), raw)
        answered(answer)
    headers = {"Retry-After": str(answer.retry_after)} if answer.retry_after else None
    return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)
