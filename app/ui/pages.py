"""Rendering the dashboard: the Jinja2 templates shipped in the package (autoescaped), the
security headers of every page, and the route class that turns refusals into pages."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from app.api.limits import read_body_limited
from app.errors import ChronosError

if TYPE_CHECKING:
    from jinja2 import Environment

TEMPLATES = Path(__file__).parent / "templates"
LOGIN_PATH = "/ui/login"
MAX_FORM_BYTES = 16 * 1024  # the dashboard's forms hold a token or two

# No script anywhere; inline styles only; forms post back here only; never framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:;"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    """No valid session: the page sends the browser to the login form."""


class DashboardRefused(Exception):
    """A request the dashboard refuses with a page (disabled dashboard, bad CSRF token)."""

    def __init__(self, status_code: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.title = title
        self.message = message


@lru_cache(maxsize=1)
def environment() -> Environment:
    """Built on first use: `chronos serve` does not load Jinja2 until a page is asked for.
    Autoescape is on for every template."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The template `name` rendered with `context`, with the dashboard's security headers."""
    context.setdefault("csrf", None)
    context.setdefault("done", None)
    html = environment().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def see_other(location: str) -> RedirectResponse:
    """After a POST (or without a session): GET `location` (303)."""
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)


def refusal_page(status_code: int, title: str, message: str, csrf: str | None = None) -> Response:
    return page("error.html", status_code, title=title, message=message, csrf=csrf)


class DashboardRoute(APIRoute):
    """Refusals raised by the dashboard's dependencies or by the services become HTML pages
    (or a redirect to the login form), not the admin API's JSON errors. A POST body is read
    under `MAX_FORM_BYTES` before the form is parsed."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def render_refusals(request: Request) -> Response:
            try:
                if request.method == "POST":
                    request._body = await read_body_limited(request, MAX_FORM_BYTES)
                return await handler(request)
            except LoginRequired:
                return see_other(LOGIN_PATH)
            except DashboardRefused as exc:
                return refusal_page(exc.status_code, exc.title, exc.message)
            except ChronosError as exc:
                title = {404: "Not found", 409: "Not possible now"}.get(exc.status_code, "Refused")
                return refusal_page(exc.status_code, title, exc.message)

        return render_refusals
