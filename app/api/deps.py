"""Request dependencies as `Annotated` aliases, one per service the routers use."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import Forbidden, Unauthorized
from app.fire.service import FireService
from app.jobs.service import JobService
from app.reconcile.service import Reconciler
from app.services import Services, StartupState
from app.settings import Settings
from app.store import Store


def get_services(request: Request) -> Services:
    services = request.app.state.services
    if not isinstance(services, Services):
        raise RuntimeError("the app's lifespan has not built its services")
    return services


def get_settings(request: Request) -> Settings:
    settings = request.app.state.settings
    if not isinstance(settings, Settings):
        raise RuntimeError("the app was built without settings")
    return settings


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def _store(services: ServicesDep) -> Store:
    return services.store


def _fires(services: ServicesDep) -> FireService:
    return services.fires


def _jobs(services: ServicesDep) -> JobService:
    return services.jobs


def _reconciler(services: ServicesDep) -> Reconciler:
    return services.reconciler


def _startup(services: ServicesDep) -> StartupState:
    return services.startup


StoreDep = Annotated[Store, Depends(_store)]
FiresDep = Annotated[FireService, Depends(_fires)]
JobsDep = Annotated[JobService, Depends(_jobs)]
ReconcilerDep = Annotated[Reconciler, Depends(_reconciler)]
StartupDep = Annotated[StartupState, Depends(_startup)]


_admin_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="`Authorization: Bearer $CHRONOS_ADMIN_TOKEN`",
)


def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> None:
    """Bearer auth for the admin API, compared in constant time."""
    expected = settings.admin_token_value()
    if not expected:
        raise Forbidden(
            "the admin API is disabled: set CHRONOS_ADMIN_TOKEN (or CHRONOS_ADMIN_TOKEN_FILE)"
            " to enable it"
        )
    if credentials is None or not credentials.credentials.strip():
        raise Unauthorized("missing bearer token: send Authorization: Bearer <admin token>")
    if not hmac.compare_digest(credentials.credentials.strip().encode(), expected.encode()):
        raise Unauthorized("invalid admin token")


AdminDep = Depends(require_admin)


def require_metrics_access(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> None:
    """`/metrics` takes the admin token, unless `CHRONOS_METRICS_PUBLIC=true`."""
    if not settings.metrics_public:
        require_admin(settings, credentials)
