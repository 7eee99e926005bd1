"""Dashboard sessions: a signed cookie value that never holds the admin token, and a CSRF
token per session.

The signing key is derived from the admin token (HMAC-SHA256 over a fixed label), so a
session is valid on every replica sharing the token, and changing the token ends every
session. The cookie is `<expires>.<nonce>.<signature>`; the session's CSRF token is another
HMAC of its nonce. Pure: pass `now` (epoch seconds) in."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

COOKIE_NAME = "chronos_session"
SESSION_SECONDS = 8 * 3600
_KEY_LABEL = b"chronos dashboard session key v1"


@dataclass(frozen=True)
class Session:
    nonce: str
    expires: int
    csrf: str


def _key(admin_token: str) -> bytes:
    return hmac.new(admin_token.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _session(key: bytes, nonce: str, expires: int) -> Session:
    return Session(nonce=nonce, expires=expires, csrf=_mac(key, f"csrf.{nonce}"))


def token_matches(given: str, admin_token: str) -> bool:
    """The login form's token equals the admin token (constant time)."""
    return hmac.compare_digest(given.strip().encode(), admin_token.encode())


def new_session(admin_token: str, now: float) -> tuple[Session, str]:
    """A fresh session and its cookie value."""
    key = _key(admin_token)
    nonce = secrets.token_urlsafe(18)
    expires = int(now) + SESSION_SECONDS
    signed = f"{expires}.{nonce}"
    return _session(key, nonce, expires), f"{signed}.{_mac(key, signed)}"


def read_session(cookie: str | None, admin_token: str, now: float) -> Session | None:
    """The session the cookie stands for, or None when it is absent, forged or expired."""
    if not cookie or cookie.count(".") != 2:
        return None
    expires_text, nonce, signature = cookie.split(".")
    key = _key(admin_token)
    if not hmac.compare_digest(signature.encode(), _mac(key, f"{expires_text}.{nonce}").encode()):
        return None
    if not expires_text.isdigit() or int(expires_text) <= now:
        return None
    return _session(key, nonce, int(expires_text))


def csrf_matches(given: str | None, session: Session) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), session.csrf.encode())
