"""`GET /api/status`: the agent's state at a glance, for operators (admin token)."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import AdminDep, ServicesDep
from app.status.schemas import StatusOut
from app.status.service import agent_status

_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

router = APIRouter(
    prefix="/api",
    tags=["admin"],
    dependencies=[AdminDep],
    responses={
        401: {"description": "missing or wrong admin token", **_ERROR},
        403: {"description": "admin API disabled: no CHRONOS_ADMIN_TOKEN configured", **_ERROR},
    },
)


@router.get(
    "/status",
    response_model=StatusOut,
    summary="The agent's state: store, NAS, outbox, reconcile, runs, leases and readiness",
)
async def status(services: ServicesDep) -> StatusOut:
    return await agent_status(services)
