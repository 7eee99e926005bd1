"""Masking secrets in text with `***`.

Two kinds of secret: values known in advance (a target's header values, `env` values, python
`kwargs`, URL userinfo; the agent's own tokens), masked wherever they appear; and credentials
recognisable by their shape (userinfo in a URL, a bearer token, a JWT, a `?token=` query
value), masked in every log line as a last line of defence. Neither replaces not logging or
quoting a secret in the first place.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "***"

# Shorter values ("1", "on", "C") are not worth masking: they would garble every message.
MIN_SECRET_CHARS = 4

_CREDENTIAL_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host → scheme://***@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#@\"'<>]+@"), rf"\g<1>{REDACTED}@"),
    # a JWT: base64url header and payload, both JSON objects, then a signature
    (re.compile(r"\beyJ[\w-]+\.eyJ[\w-]+\.[\w-]*"), REDACTED),
    # Authorization: Bearer <token> / Basic <credentials>
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[\w.~+/=\-]{6,}"), rf"\g<1>\g<2>{REDACTED}"),
    # ?token=…, &api_key=…, &password=… in a query string
    (
        re.compile(
            r"(?i)([?&][\w.\-]*(?:token|secret|passw(?:or)?d|key|signature|auth)[\w.\-]*=)[^&\s\"'#]+"
        ),
        rf"\g<1>{REDACTED}",
    ),
)


def mask_credentials(text: str) -> str:
    """`text` with everything shaped like a credential replaced by `***`."""
    for pattern, replacement in _CREDENTIAL_SHAPES:
        text = pattern.sub(replacement, text)
    return text


def url_without_userinfo(url: str) -> str:
    """`url` with its userinfo (user and password) replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_credentials(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))


def userinfo_values(url: str) -> Iterator[str]:
    """The user, the password and the whole userinfo of `url`, as written and decoded, and the
    `Basic` credential an HTTP client derives from them."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return
    for value in (userinfo, *userinfo.split(":", 1)):
        yield value
        yield unquote(value)
    user, _, password = userinfo.partition(":")
    basic = f"{unquote(user)}:{unquote(password)}".encode()
    yield base64.b64encode(basic).decode("ascii")


def leaf_values(value: object) -> Iterator[str]:
    """Every string and number inside `value` (dicts, lists and tuples at any depth), as text."""
    if isinstance(value, Mapping):
        for item in value.values():
            yield from leaf_values(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from leaf_values(item)
    elif isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


def header_secret_values(headers: Mapping[str, str]) -> Iterator[str]:
    """Header values, and the credential alone of `<scheme> <credential>` values."""
    for value in headers.values():
        yield value
        scheme, space, credential = value.partition(" ")
        if space and scheme.isalpha():
            yield credential.strip()


class Secrets:
    """Known secret values, masked wherever they appear in a text (the longest first, so a
    value that contains another is masked whole)."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        unique = {v for v in values if len(v) >= MIN_SECRET_CHARS and v != REDACTED}
        self.values: tuple[str, ...] = tuple(sorted(unique, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self.values)

    def mask(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def mask_cut(self, text: str) -> str:
        """`text`, cut short, with a secret it ends in the middle of masked too (when at least
        `MIN_SECRET_CHARS` of it are there)."""
        for value in self.values:
            for size in range(len(value) - 1, MIN_SECRET_CHARS - 1, -1):
                if text.endswith(value[:size]):
                    return text[:-size] + REDACTED
        return text
