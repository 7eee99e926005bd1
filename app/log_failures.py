"""What a failed connection to the database or to NAS is, in two log fields: `error` (the
cause, e.g. `connection refused`) and `host` (`127.0.0.1:5432`). A refused connection is an
operational fact, not a bug: its traceback (kilobytes of driver frames) would bury the line.

Only the standard library is imported here; httpx's and asyncpg's errors are recognised by
what they carry (`request.url`, an `addr` in their frames), so logging loads neither.
"""

from __future__ import annotations

import errno
import re
import socket
from collections.abc import Iterator
from types import TracebackType

_ERRNO_CAUSES = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ECONNABORTED: "connection aborted",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.EPIPE: "connection closed",
}
# Messages that name the cause when the errno is lost (asyncio's "Multiple exceptions: …",
# httpx/httpcore's ConnectError text, asyncpg's closed connections).
_TEXT_CAUSES = (
    ("connection refused", "connection refused"),
    ("connect call failed", "connection refused"),
    ("all connection attempts failed", "connection refused"),
    ("name or service not known", "name not resolved"),
    ("temporary failure in name resolution", "name not resolved"),
    ("nodename nor servname", "name not resolved"),
    ("no route to host", "host unreachable"),
    ("network is unreachable", "network unreachable"),
    ("connection reset", "connection reset"),
    ("connection was closed", "connection closed"),
    ("server closed the connection", "connection closed"),
)
# httpx/httpcore transport errors that mean the peer was never reached or hung up.
_CONNECT_ERRORS = {"ConnectError": "cannot connect", "ConnectTimeout": "connection timed out"}
_ADDRESS = re.compile(r"\('([^']+)', (\d+)")
_TRACEBACK_HEAD = "Traceback (most recent call last):"


def chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what caused it (`__cause__`, else `__context__`), outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _cause(exc: BaseException) -> str | None:
    if isinstance(exc, socket.gaierror):
        return "name not resolved"
    if isinstance(exc, OSError) and exc.errno in _ERRNO_CAUSES:
        return _ERRNO_CAUSES[exc.errno]
    if isinstance(exc, ConnectionError):
        return "connection closed"
    text = str(exc).lower()
    if isinstance(exc, OSError) or type(exc).__name__ in _CONNECT_ERRORS:
        for needle, cause in _TEXT_CAUSES:
            if needle in text:
                return cause
    return _CONNECT_ERRORS.get(type(exc).__name__)


def _host_of_request(exc: BaseException) -> str | None:
    """httpx errors carry the request they failed."""
    try:
        url = exc.request.url  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):  # not httpx, or raised without its request
        return None
    host, port = getattr(url, "host", None), getattr(url, "port", None)
    if not host:
        return None
    if port is None:
        port = {"https": 443, "http": 80}.get(str(getattr(url, "scheme", "")))
    return f"{host}:{port}" if port else str(host)


def _host_in_frames(tb: TracebackType | None) -> str | None:
    """The innermost `addr` (host, port) a connecting frame held (asyncpg's connect)."""
    found = None
    while tb is not None:
        addr = tb.tb_frame.f_locals.get("addr")
        if isinstance(addr, tuple) and len(addr) >= 2 and isinstance(addr[0], str):
            found = f"{addr[0]}:{addr[1]}"
        elif isinstance(addr, str) and addr.startswith("/"):
            found = addr  # a Unix socket
        tb = tb.tb_next
    return found


def _host(exceptions: list[BaseException]) -> str | None:
    for exc in exceptions:
        host = _host_of_request(exc)
        if host is None and (match := _ADDRESS.search(str(exc))):
            host = f"{match[1]}:{match[2]}"
        if host is not None:
            return host
    for exc in reversed(exceptions):
        host = _host_in_frames(exc.__traceback__)
        if host is not None:
            return host
    return None


def connection_failure(exc: BaseException) -> dict[str, str] | None:
    """`{"error": cause, "host": host}` when `exc` (or what caused it) is a connection that
    failed; `host` only when it could be told. None for any other exception."""
    exceptions = list(chain(exc))
    cause = next((c for c in map(_cause, exceptions) if c is not None), None)
    if cause is None:
        return None
    host = _host(exceptions)
    return {"error": cause} if host is None else {"error": cause, "host": host}


def failure_fields(exc: BaseException) -> dict[str, str]:
    """The log fields of a failure: the connection's cause and host when it is one, else
    `error` alone (the exception's text, or its type when it has none)."""
    return connection_failure(exc) or {"error": str(exc) or type(exc).__name__}


def is_traceback_text(text: str) -> bool:
    """A message that is a formatted traceback (as uvicorn logs a failed lifespan)."""
    return text.startswith(_TRACEBACK_HEAD)
