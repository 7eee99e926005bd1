"""Liveness and readiness for orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api.deps import ServicesDep, StartupDep, StoreDep
from app.status.readiness import readiness

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
    ready = await readiness(store, startup, services.drain)
    if not ready.ready:
        return JSONResponse({"status": "unavailable", "reason": ready.reason}, status_code=503)
    return JSONResponse({"status": "ready"})
