"""Request dependencies as `Annotated` aliases."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import Forbidden, Unauthorized
from app.settings import Settings

if TYPE_CHECKING:
    from app.main import Services


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


ServicesDep = Annotated["Services", Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


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
