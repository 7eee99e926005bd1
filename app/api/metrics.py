"""`GET /metrics`: this process's metrics in Prometheus's text format."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import ServicesDep, require_metrics_access

router = APIRouter(tags=["metrics"])

_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


@router.get(
    "/metrics",
    summary="Prometheus metrics of this process",
    description=(
        "The admin token is required unless CHRONOS_METRICS_PUBLIC=true. Each replica serves"
        " its own figures (scrape every replica); figures read from the store are shared."
    ),
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format; one replica's figures (scrape each)",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        401: {"description": "missing or wrong admin token", **_ERROR},
        403: {
            "description": "no admin token configured and CHRONOS_METRICS_PUBLIC unset",
            **_ERROR,
        },
    },
    dependencies=[Depends(require_metrics_access)],
)
async def metrics(services: ServicesDep) -> Response:
    body = await services.metrics.scrape()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
