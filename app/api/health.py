"""Liveness and readiness for orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api.deps import ServicesDep, StartupDep, StoreDep
from app.store import StoreUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


class Readiness(BaseModel):
    status: str = Field(description="ready | unavailable")
    reason: str | None = Field(default=None, description="why the agent is not ready")


@router.get(
    "/readyz",
    summary="The store answers, the startup reconcile finished and the agent is not draining",
    response_model=Readiness,
    responses={
        503: {
            "description": (
                "not ready; `reason` says why (`draining` from SIGTERM until the process exits)"
            ),
            "model": Readiness,
        }
    },
)
async def readyz(store: StoreDep, startup: StartupDep, services: ServicesDep) -> JSONResponse:
    if services.drain.draining:
        return JSONResponse({"status": "unavailable", "reason": "draining"}, status_code=503)
    try:
        await store.ping()
    except StoreUnavailable:
        return JSONResponse(
            {"status": "unavailable", "reason": "store unreachable"}, status_code=503
        )
    if not startup.done:
        reason = "startup reconcile not finished"
        if startup.last_error:
            reason += f": {startup.last_error}"
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ready"})
