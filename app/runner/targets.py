"""Job targets: what "run the job" means, validated when a job is saved and executed per fire.

Three kinds, told apart by `type`: an HTTP request (`http`), a program run without a shell
(`command`) and an importable Python function (`python`). `parse_target` validates stored
target data; `TargetRunner.run` executes a target once and turns every failure into a
`RunResult` (only cancellation propagates).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import importlib
import inspect
import json
import logging
import os
import pwd
import re
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

log = logging.getLogger(__name__)

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
RunStatus = Literal["succeeded", "failed", "timed_out"]

TRUNCATION_MARKER = "…[truncated]"
_MARKER_BYTES = len(TRUNCATION_MARKER.encode("utf-8"))

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_LANG = "C.UTF-8"

_CALLABLE_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Visible ASCII, inner spaces and tabs; no CR/LF, so no header injection.
_HEADER_VALUE_RE = re.compile(r"^([\x21-\x7e]([\t\x20-\x7e]*[\x21-\x7e])?)?$")
# The runner sets these itself: framing is httpx's job, the idempotency key is the fire's.
_RESERVED_HEADERS = {"content-length", "transfer-encoding", "idempotency-key"}
_ENV_NAME_RE = re.compile(r"^[^=\x00]+$")

_REAP_TIMEOUT_SECONDS = 5.0
_READ_CHUNK_BYTES = 64 * 1024


# --- Target models ------------------------------------------------------------------------


class _TargetModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpTarget(_TargetModel):
    """Send one HTTP request; a 2xx answer is a success."""

    type: Literal["http"]
    url: str
    method: HttpMethod = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None  # a str is sent as-is, anything else as JSON
    timeout_seconds: float = Field(default=30, gt=0, le=3600)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        # Messages never echo the URL: it may carry credentials.
        if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise ValueError("must not contain whitespace or control characters")
        parts = urlsplit(value)
        if parts.scheme.lower() not in {"http", "https"}:
            raise ValueError("must be an absolute http:// or https:// URL")
        if not parts.hostname:
            raise ValueError("must name a host")
        try:
            parts.port  # noqa: B018 - urlsplit only checks the port when asked
            httpx.URL(value)
        except (ValueError, httpx.InvalidURL):
            raise ValueError("is not a valid URL") from None
        return value

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        # Messages name the header, never its value: values often hold tokens.
        for name, header_value in value.items():
            if not _HEADER_NAME_RE.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP token")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the runner and cannot be given")
            if not _HEADER_VALUE_RE.match(header_value):
                raise ValueError(
                    f"header {name!r}: the value must be printable ASCII, without line breaks "
                    "or leading/trailing whitespace"
                )
        return value


class CommandTarget(_TargetModel):
    """Run a program without a shell, in a clean environment; exit 0 is a success."""

    type: Literal["command"]
    argv: list[str] = Field(min_length=1)
    timeout_seconds: float = Field(default=60, gt=0, le=86400)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None

    @field_validator("argv")
    @classmethod
    def _check_argv(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the program (first element) must not be empty")
        if any("\x00" in arg for arg in value):
            raise ValueError("arguments must not contain NUL characters")
        return value

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: dict[str, str]) -> dict[str, str]:
        for name, env_value in value.items():
            if not _ENV_NAME_RE.match(name):
                raise ValueError(f"variable name {name!r} must be non-empty, without '=' or NUL")
            if "\x00" in env_value:
                raise ValueError(f"variable {name!r}: the value must not contain NUL")
        return value

    @field_validator("cwd")
    @classmethod
    def _check_cwd(cls, value: str | None) -> str | None:
        if value is not None and (not os.path.isabs(value) or "\x00" in value):
            raise ValueError("must be an absolute path")
        return value


class PythonTarget(_TargetModel):
    """Call `package.module:function` with `kwargs`; returning normally is a success."""

    type: Literal["python"]
    callable: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: float | None = Field(default=None, gt=0, le=86400)

    @field_validator("callable")
    @classmethod
    def _check_callable(cls, value: str) -> str:
        if not _CALLABLE_RE.match(value):
            raise ValueError("must look like 'package.module:function'")
        return value


Target = Annotated[HttpTarget | CommandTarget | PythonTarget, Field(discriminator="type")]
TARGET_ADAPTER: TypeAdapter[Target] = TypeAdapter(Target)
_TARGET_TAGS = ("http", "command", "python")
_EXPECTED_TAGS = ", ".join(repr(tag) for tag in _TARGET_TAGS)


def parse_target(data: dict[str, Any]) -> Target:
    """Validate target data; `ValueError` names each offending field (`target.argv: ...`)."""
    try:
        return TARGET_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One readable line per pydantic error, `target.<field>: <message>`; inputs never echoed."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = list(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] in {"union_tag_invalid", "union_tag_not_found"}:
            loc = ["type"]
            message = f"must be one of {_EXPECTED_TAGS}"
        elif loc and loc[0] in _TARGET_TAGS:
            loc = loc[1:]  # pydantic prefixes the union member's tag
        where = "target"
        for part in loc:
            where += f"[{part}]" if isinstance(part, int) else f".{part}"
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


# --- Run context and result ---------------------------------------------------------------


@dataclass(frozen=True)
class RunContext:
    """Which fire is running. `dedup_key` is `{job_id}:{fire_at}` or `manual:<uuid>`."""

    job_id: str
    fire_at: datetime
    dedup_key: str


@dataclass(frozen=True)
class RunResult:
    """How one run went. `output` and `error` are bounded by the runner's output budget."""

    status: RunStatus
    outcome: str | None
    output: str | None
    error: str | None


def truncate_text(text: str, limit: int, *, truncated: bool = False) -> str:
    """`text` within `limit` UTF-8 bytes; a cut (or `truncated`) ends with the marker."""
    encoded = text.encode("utf-8", errors="replace")
    if not truncated and len(encoded) <= limit:
        return encoded.decode("utf-8")
    # Encoded is valid UTF-8, so "ignore" only drops a character split by the cut.
    head = encoded[: max(0, limit - _MARKER_BYTES)].decode("utf-8", errors="ignore")
    return head + TRUNCATION_MARKER


def utc_iso(value: datetime) -> str:
    """ISO 8601 in UTC (`+00:00`); a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def command_environment(target: CommandTarget, ctx: RunContext) -> dict[str, str]:
    """The child's whole environment: nothing from the service's beyond PATH, HOME and LANG.

    The target's `env` may override those three; the `CHRONOS_*` run variables are set last
    so a target cannot spoof them.
    """
    env = {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "HOME": os.environ.get("HOME") or _home_of_current_user(),
        "LANG": os.environ.get("LANG") or DEFAULT_LANG,
    }
    env.update(target.env)
    env["CHRONOS_JOB_ID"] = ctx.job_id
    env["CHRONOS_FIRE_AT"] = utc_iso(ctx.fire_at)
    env["CHRONOS_DEDUP_KEY"] = ctx.dedup_key
    return env


def _home_of_current_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_dir or "/"
    except KeyError:
        return "/"


class _BoundedCapture:
    """Reads a stream to its end, keeping only the first `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def feed(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(0, room)]
        self.data += chunk

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        # Keep reading after the budget is spent: a child blocked on a full pipe never exits.
        while chunk := await stream.read(_READ_CHUNK_BYTES):
            self.feed(chunk)

    def text(self) -> str | None:
        decoded = bytes(self.data).decode("utf-8", errors="replace")
        return truncate_text(decoded, self.limit, truncated=self.truncated) or None


# --- Runner -------------------------------------------------------------------------------


class TargetRunner:
    """Runs a target once per fire. One instance per process, sharing the app's httpx client.

    `run` never raises for a failing target: every failure is a `RunResult`. Only
    `asyncio.CancelledError` propagates, after a command's process group has been killed.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        max_output_bytes: int = 4096,
        kill_grace_seconds: float = 2.0,
    ) -> None:
        if max_output_bytes <= _MARKER_BYTES:
            raise ValueError(f"max_output_bytes must be greater than {_MARKER_BYTES}")
        if kill_grace_seconds < 0:
            raise ValueError("kill_grace_seconds must not be negative")
        self._http = http
        self.max_output_bytes = max_output_bytes
        self.kill_grace_seconds = kill_grace_seconds
        self._cleanups: set[asyncio.Task[None]] = set()

    async def run(self, target: Target, ctx: RunContext) -> RunResult:
        """Execute `target` for the fire `ctx`; see each kind's method for the mapping."""
        extra = {"job_id": ctx.job_id, "fire_at": utc_iso(ctx.fire_at), "target_type": target.type}
        started = time.monotonic()
        try:
            if isinstance(target, HttpTarget):
                result = await self.run_http(target, ctx)
            elif isinstance(target, CommandTarget):
                result = await self.run_command(target, ctx)
            else:
                result = await self.run_python(target, ctx)
        except Exception as exc:
            # A bug here must not kill the run loop. The message is left out: it could quote
            # a header or an argument.
            log.error(
                "target runner failed unexpectedly",
                extra={**extra, "exception_type": type(exc).__name__},
            )
            result = RunResult(
                "failed",
                None,
                None,
                f"internal error while running the target: {type(exc).__name__}",
            )
        log.info(
            "target run finished",
            extra={
                **extra,
                "status": result.status,
                "outcome": result.outcome,
                "duration_ms": round((time.monotonic() - started) * 1000),
            },
        )
        return result

    def _bound(self, text: str | None) -> str | None:
        return truncate_text(text, self.max_output_bytes) if text else None

    # --- http ---

    async def run_http(self, target: HttpTarget, ctx: RunContext) -> RunResult:
        """2xx → succeeded, other status → failed (`http <status>`), no answer in time → timed_out.

        The request carries `Idempotency-Key: <dedup_key>`, so a retried fire is recognisable.
        Redirects follow the shared client's policy. Errors never quote request headers.
        """
        headers = httpx.Headers(target.headers)
        headers["Idempotency-Key"] = ctx.dedup_key
        request = self._http.build_request(
            target.method,
            target.url,
            headers=headers,
            content=target.body if isinstance(target.body, str) else None,
            json=None if isinstance(target.body, str) else target.body,
            timeout=httpx.Timeout(target.timeout_seconds),
        )
        host = _host_of(target.url)
        capture = _BoundedCapture(self.max_output_bytes)
        try:
            # httpx's timeout is per phase; this one bounds the whole exchange.
            async with asyncio.timeout(target.timeout_seconds):
                response = await self._http.send(request, stream=True)
                try:
                    async for chunk in response.aiter_bytes():
                        capture.feed(chunk)
                        if capture.truncated:
                            break  # the rest of the body is not wanted
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return RunResult(
                "timed_out",
                "timeout",
                None,
                f"no complete answer from {host} within {target.timeout_seconds:g}s",
            )
        except httpx.ConnectError as exc:
            return RunResult(
                "failed", None, None, self._bound(f"cannot connect to {host}: {_describe(exc)}")
            )
        except httpx.LocalProtocolError:
            # h11 quotes the offending header value, which may be a secret.
            return RunResult(
                "failed", None, None, "the HTTP client rejected the request (headers or body)"
            )
        except httpx.HTTPError as exc:
            return RunResult(
                "failed",
                None,
                None,
                self._bound(f"request to {host} failed: {type(exc).__name__}: {_describe(exc)}"),
            )

        body = bytes(capture.data).decode(_charset(response), errors="replace")
        output = truncate_text(body, self.max_output_bytes, truncated=capture.truncated) or None
        outcome = f"http {response.status_code}"
        if response.is_success:
            return RunResult("succeeded", outcome, output, None)
        reason = response.reason_phrase or "unsuccessful status"
        return RunResult(
            "failed", outcome, output, f"{host} answered {response.status_code} {reason}"
        )

    # --- command ---

    async def run_command(self, target: CommandTarget, ctx: RunContext) -> RunResult:
        """exit 0 → succeeded, other exit → failed (`exit <code>`), over time → timed_out.

        No shell, stdin from /dev/null, a clean environment (`command_environment`), and the
        child in its own session, so a timeout or cancellation kills its whole process group
        (SIGTERM, then SIGKILL after the grace period). The run ends when the program has
        exited and closed its stdout and stderr: a background process that keeps them open
        keeps the run going until the timeout. A process that leaves the group (`setsid`)
        escapes the kill.
        """
        program = target.argv[0]
        try:
            proc = await asyncio.create_subprocess_exec(
                *target.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=command_environment(target, ctx),
                cwd=target.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            return RunResult("failed", None, None, self._bound(_describe_spawn_error(exc, target)))

        stdout = _BoundedCapture(self.max_output_bytes)
        stderr = _BoundedCapture(self.max_output_bytes)
        readers = (
            asyncio.create_task(stdout.drain(proc.stdout)),
            asyncio.create_task(stderr.drain(proc.stderr)),
        )
        try:
            async with asyncio.timeout(target.timeout_seconds):
                await asyncio.wait(readers)
                returncode = await proc.wait()
        except TimeoutError:
            await self._stop_process_group(proc, readers)
            message = f"timed out after {target.timeout_seconds:g}s; the process group was killed"
            if err := stderr.text():
                message += f"\n{err}"
            return RunResult("timed_out", "timeout", stdout.text(), self._bound(message))
        except BaseException:
            await self._kill_and_reap(proc, readers)
            raise

        if returncode == 0:
            return RunResult("succeeded", "exit 0", stdout.text(), stderr.text())
        outcome = _describe_returncode(returncode)
        return RunResult(
            "failed", outcome, stdout.text(), stderr.text() or f"{program} ended with {outcome}"
        )

    async def _stop_process_group(
        self, proc: asyncio.subprocess.Process, readers: Sequence[asyncio.Task[None]]
    ) -> None:
        """SIGTERM the group, wait up to the grace period, then SIGKILL whatever is left."""
        exited = asyncio.ensure_future(proc.wait())
        try:
            _signal_group(proc.pid, signal.SIGTERM)
            await asyncio.wait({exited}, timeout=self.kill_grace_seconds)
        finally:
            exited.cancel()
            await self._kill_and_reap(proc, readers)

    async def _kill_and_reap(
        self, proc: asyncio.subprocess.Process, readers: Sequence[asyncio.Task[None]]
    ) -> None:
        """SIGKILL the group and reap it; the reaping survives a cancellation of the caller."""
        _signal_group(proc.pid, signal.SIGKILL)
        cleanup = asyncio.ensure_future(_reap(proc, readers))
        self._cleanups.add(cleanup)
        cleanup.add_done_callback(self._cleanups.discard)
        await asyncio.shield(cleanup)

    # --- python ---

    async def run_python(self, target: PythonTarget, ctx: RunContext) -> RunResult:
        """Returning → succeeded, raising → failed (`<ExcType>: <message>`), over time → timed_out.

        A coroutine function is awaited on the event loop; a plain function runs in a worker
        thread (`asyncio.to_thread`) so it never blocks the loop. Both get `**kwargs`. On
        timeout a coroutine is cancelled, but a thread cannot be killed: a timed-out plain
        function keeps running in its thread (and holds a worker) until it returns on its own.
        Return values: None → no output, a str as-is, anything else as JSON (`default=str`).
        """
        try:
            func = _resolve_callable(target.callable)
        except Exception as exc:
            message = f"cannot load callable {target.callable!r}: {type(exc).__name__}: {exc}"
            return RunResult("failed", None, None, self._bound(message))

        deadline = asyncio.timeout(target.timeout_seconds)
        try:
            async with deadline:
                value = await _call(func, target.kwargs)
        except TimeoutError as exc:
            if not deadline.expired():  # raised by the callable itself
                return RunResult("failed", None, None, self._bound(_describe_exception(exc)))
            return RunResult(
                "timed_out",
                "timeout",
                None,
                f"{target.callable} did not return within {target.timeout_seconds:g}s",
            )
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being cancelled
            # The callable raised CancelledError on its own: a failure like any other.
            return RunResult("failed", None, None, "CancelledError: the callable was cancelled")
        except (Exception, SystemExit) as exc:
            return RunResult("failed", None, None, self._bound(_describe_exception(exc)))
        return RunResult("succeeded", "returned", self._bound(_format_return(value)), None)


# --- helpers ------------------------------------------------------------------------------


def _host_of(url: str) -> str:
    """The host (and port) of a URL, without credentials, path or query, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _describe_exception(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _charset(response: httpx.Response) -> str:
    encoding = response.charset_encoding or "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        return "utf-8"
    return encoding


def _describe_spawn_error(exc: OSError, target: CommandTarget) -> str:
    program = target.argv[0]
    if target.cwd is not None and exc.filename == target.cwd:
        return f"cannot start {program!r}: working directory {target.cwd!r}: {exc.strerror or exc}"
    if isinstance(exc, FileNotFoundError):
        return f"program not found: {program!r}"
    if isinstance(exc, PermissionError):
        return f"permission denied: cannot execute {program!r}"
    return f"cannot start {program!r}: {exc.strerror or exc}"


def _describe_returncode(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit {returncode}"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal the child's process group (its pid: it leads its own session)."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # the whole group is gone already
    except PermissionError:
        # Some systems refuse killpg while the leader is a zombie; signal the leader at least.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pgid, sig)


async def _reap(proc: asyncio.subprocess.Process, readers: Sequence[asyncio.Task[None]]) -> None:
    """Wait for the killed child's pipes to close and the child to be reaped, within bounds."""
    _, pending = await asyncio.wait(readers, timeout=_REAP_TIMEOUT_SECONDS)
    if pending:
        # Only a process that left the group can still hold the pipes open.
        log.warning("a process outside the job's process group still holds its output")
        for task in pending:
            task.cancel()
        await asyncio.wait(pending)
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_REAP_TIMEOUT_SECONDS):
            await proc.wait()


def _resolve_callable(spec: str) -> Callable[..., Any]:
    module_name, _, attribute = spec.partition(":")
    module = importlib.import_module(module_name)
    func = getattr(module, attribute)
    if not callable(func):
        raise TypeError(f"{attribute!r} is a {type(func).__name__}, not a function")
    return func  # type: ignore[no-any-return]


async def _call(func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(func):
        return await func(**kwargs)
    value = await asyncio.to_thread(func, **kwargs)
    if inspect.isawaitable(value):  # e.g. a partial or a callable object wrapping a coroutine
        value = await value
    return value


def _format_return(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError, RecursionError):
        return repr(value)
