"""Running an `http` target: one request through the shared httpx client.

2xx → succeeded, other status → failed (`http <status>`), no answer in time → timed_out.
Messages name the host only, never credentials, path, query or request headers; the target's
header values and URL userinfo are masked (`***`) in the whole result, the answer included.
"""

from __future__ import annotations

import asyncio
import codecs
from dataclasses import replace
from urllib.parse import urlsplit

import httpx

from app.domain.states import RunStatus
from app.redaction import mask_credentials
from app.runner.targets.capture import BoundedCapture, bound_text, truncate_text
from app.runner.targets.models import HttpTarget
from app.runner.targets.result import RunContext, RunResult, target_secrets


async def execute_http(
    client: httpx.AsyncClient, target: HttpTarget, ctx: RunContext, max_output_bytes: int
) -> RunResult:
    """Send the request and map the answer; every failure is a `RunResult`.

    The request carries `Idempotency-Key: <dedup_key>`, so a retried fire is recognisable,
    and `Chronos-Attempt: <n>`.
    Redirects follow the shared client's policy. Errors never quote request headers, and the
    result never shows the target's secrets (`target_secrets`) nor URL userinfo.
    """
    result = await _exchange(client, target, ctx, max_output_bytes)
    if result.error:  # an httpx message may quote a URL (a redirect's, say)
        result = replace(
            result, error=truncate_text(mask_credentials(result.error), max_output_bytes)
        )
    return result.masked(target_secrets(target))


async def _exchange(
    client: httpx.AsyncClient, target: HttpTarget, ctx: RunContext, max_output_bytes: int
) -> RunResult:
    headers = httpx.Headers(target.headers)
    headers["Idempotency-Key"] = ctx.dedup_key
    headers["Chronos-Attempt"] = str(ctx.attempt)
    request = client.build_request(
        target.method,
        target.url,
        headers=headers,
        content=target.body if isinstance(target.body, str) else None,
        json=None if isinstance(target.body, str) else target.body,
        timeout=httpx.Timeout(target.timeout_seconds),
    )
    host = _host_of(target.url)
    capture = BoundedCapture(max_output_bytes)
    try:
        # httpx's timeout is per phase; this one bounds the whole exchange.
        async with asyncio.timeout(target.timeout_seconds):
            response = await client.send(request, stream=True)
            try:
                async for chunk in response.aiter_bytes():
                    capture.feed(chunk)
                    if capture.truncated:
                        break  # the rest of the body is not wanted
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        return RunResult(
            RunStatus.TIMED_OUT,
            "timeout",
            None,
            f"no complete answer from {host} within {target.timeout_seconds:g}s",
        )
    except httpx.ConnectError as exc:
        return RunResult(
            RunStatus.FAILED,
            None,
            None,
            bound_text(f"cannot connect to {host}: {_describe(exc)}", max_output_bytes),
        )
    except httpx.LocalProtocolError:
        # h11 quotes the offending header value, which may be a secret.
        return RunResult(
            RunStatus.FAILED, None, None, "the HTTP client rejected the request (headers or body)"
        )
    except httpx.HTTPError as exc:
        return RunResult(
            RunStatus.FAILED,
            None,
            None,
            bound_text(
                f"request to {host} failed: {type(exc).__name__}: {_describe(exc)}",
                max_output_bytes,
            ),
        )

    body = bytes(capture.data).decode(_charset(response), errors="replace")
    output = truncate_text(body, max_output_bytes, truncated=capture.truncated) or None
    outcome = f"http {response.status_code}"
    if response.is_success:
        return RunResult(RunStatus.SUCCEEDED, outcome, output, None)
    reason = response.reason_phrase or "unsuccessful status"
    return RunResult(
        RunStatus.FAILED, outcome, output, f"{host} answered {response.status_code} {reason}"
    )


def _host_of(url: str) -> str:
    """The host (and port) of a URL, without credentials, path or query, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _charset(response: httpx.Response) -> str:
    encoding = response.charset_encoding or "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        return "utf-8"
    return encoding
