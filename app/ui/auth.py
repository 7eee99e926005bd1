"""The dashboard's login state as request dependencies: a session cookie signed with a key
derived from the admin token, and a CSRF token checked on every POST."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request, Response

from app.api.deps import SettingsDep
from app.ui.pages import DashboardRefused, LoginRequired
from app.ui.session import COOKIE_NAME, SESSION_SECONDS, Session, csrf_matches, read_session

COOKIE_PATH = "/ui"


def require_admin_token(settings: SettingsDep) -> str:
    """The admin token; without one the dashboard is disabled, as the admin API is."""
    token = settings.admin_token_value()
    if not token:
        raise DashboardRefused(
            403,
            "Dashboard disabled",
            "The dashboard is disabled: set CHRONOS_ADMIN_TOKEN (or CHRONOS_ADMIN_TOKEN_FILE)"
            " to enable it.",
        )
    return token


AdminTokenDep = Annotated[str, Depends(require_admin_token)]


def require_session(request: Request, admin_token: AdminTokenDep) -> Session:
    session = read_session(request.cookies.get(COOKIE_NAME), admin_token, time.time())
    if session is None:
        raise LoginRequired
    return session


SessionDep = Annotated[Session, Depends(require_session)]


async def form_field(request: Request, name: str) -> str | None:
    """A text field of the POSTed form (parsed here rather than by FastAPI's `Form()`, whose
    per-route models cost the agent's start-up time for five small forms)."""
    value = (await request.form()).get(name)
    return value if isinstance(value, str) else None


async def require_csrf(request: Request, session: SessionDep) -> Session:
    """A POST carries the session's CSRF token in its form, else it is refused (403) before
    anything changes."""
    if not csrf_matches(await form_field(request, "csrf"), session):
        raise DashboardRefused(
            403,
            "Refused",
            "The form's CSRF token is missing or wrong. Reload the page and try again.",
        )
    return session


CsrfDep = Annotated[Session, Depends(require_csrf)]


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    """HttpOnly, SameSite=Strict, Secure when the request came over https."""
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE_NAME,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
