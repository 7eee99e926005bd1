"""Redaction of a target's secrets for answers and log lines.

What may be secret in a target: header values, `env` values, python `kwargs` values and the
password in a URL's userinfo. Each becomes `"***"`; names, keys and everything else stay, so
an operator can still tell what a job does. Stored data is never changed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"


def redact_url(url: str) -> str:
    """`url` with the password of its userinfo replaced by `***`; a userinfo without password
    is itself the credential (`https://TOKEN@host`), and is replaced whole."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if "@" not in parts.netloc:
        return url
    user, _, host = parts.netloc.rpartition("@")
    if parts.password is None:
        return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))
    name = user.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{name}:{REDACTED}@{host}"))


def _redact_values(mapping: Any) -> Any:
    if not isinstance(mapping, dict):
        return mapping
    return dict.fromkeys(mapping, REDACTED)


def redact_target(target: dict[str, Any]) -> dict[str, Any]:
    """A copy of stored target data with its secret values replaced by `***`."""
    redacted = dict(target)
    if isinstance(redacted.get("url"), str):
        redacted["url"] = redact_url(redacted["url"])
    for field in ("headers", "env", "kwargs"):
        if field in redacted:
            redacted[field] = _redact_values(redacted[field])
    return redacted
