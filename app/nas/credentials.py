"""The agent's NAS credentials: a fixed token, a file re-read when it changes, or a command
whose answer is cached until it expires. Tokens never appear in messages or logs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import jwt

from app.clock import Clock, InvalidInstant, parse_instant, utc_now
from app.nas.errors import CredentialsUnavailable
from app.settings import Settings

log = logging.getLogger(__name__)

STATIC_SETTING = "CHRONOS_NAS_TOKEN"
FILE_SETTING = "CHRONOS_NAS_TOKEN_FILE"
COMMAND_SETTING = "CHRONOS_NAS_TOKEN_COMMAND"
JWT_EXP_MARGIN = timedelta(seconds=60)
# After a failed run, the command is not run again for this long: every NAS call in that
# window fails at once instead of queueing behind one more run of a broken command.
COMMAND_FAILURE_HOLD = timedelta(seconds=5)
# A token is reused at least this long, even one already expired by its own word: a NAS
# refusal forces a new run anyway, and a command must not run on every call.
COMMAND_MIN_REUSE = timedelta(seconds=5)
COMMAND_MAX_OUTPUT = 64 * 1024  # bytes of stdout read; more is refused, stderr only counted


class NasCredentials(Protocol):
    async def token(self) -> str:
        """The bearer token to send now."""
        ...

    async def refresh(self, refused: str | None = None) -> str:
        """A token read afresh, after NAS refused `refused`. When the current token already
        differs from `refused` (another call refreshed it meanwhile), that one is returned."""
        ...


def _checked(token: str, source: str) -> str:
    """`token` stripped; refused when empty or unfit for an HTTP header (not echoed)."""
    token = token.strip()
    if not token:
        raise CredentialsUnavailable(f"{source}: the token is empty")
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise CredentialsUnavailable(f"{source}: the token is not one printable ASCII word")
    return token


class StaticToken:
    """`CHRONOS_NAS_TOKEN`: the same token until the agent restarts."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return _checked(self._token, STATIC_SETTING)

    async def refresh(self, refused: str | None = None) -> str:
        return await self.token()


_Signature = tuple[int, int, int, int]  # device, inode, size, mtime in ns


def _read_if_changed(path: Path, known: _Signature | None) -> tuple[_Signature, str | None]:
    """The file's signature, and its text when the signature differs from `known`."""
    stat = path.stat()
    signature = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if signature == known:
        return signature, None
    return signature, path.read_text(encoding="utf-8")


class FileToken:
    """`CHRONOS_NAS_TOKEN_FILE`: read again whenever the file changes (device, inode, size or
    modification time), so a mounted secret or a sidecar rotates it without a restart.

    While the file is briefly unreadable or empty (a rewrite in progress), `token()` keeps
    the last token it read; `refresh()` does not, and fails instead."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._signature: _Signature | None = None
        self._token: str | None = None

    async def token(self) -> str:
        try:
            return await self._read(self._signature)
        except CredentialsUnavailable as exc:
            if self._token is None:
                raise
            log.warning(
                "NAS token file unusable; keeping the last token", extra={"error": str(exc)}
            )
            return self._token

    async def refresh(self, refused: str | None = None) -> str:
        return await self._read(None)

    async def _read(self, known: _Signature | None) -> str:
        try:
            signature, text = await asyncio.to_thread(_read_if_changed, self.path, known)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise CredentialsUnavailable(
                f"{FILE_SETTING}: cannot read {self.path}: {reason}"
            ) from exc
        if text is not None:
            token = _checked(text, f"{FILE_SETTING} ({self.path})")
            if self._token is not None and token != self._token:
                log.info("NAS token file changed; using the new token")
            self._signature, self._token = signature, token
        assert self._token is not None
        return self._token


@dataclass(frozen=True)
class _Issued:
    token: str
    until: datetime  # reuse the token before this instant; run the command again after it


class CommandToken:
    """`CHRONOS_NAS_TOKEN_COMMAND`: a program (no shell) that prints the token, or JSON
    `{"token": ..., "expires_at": ...}` (`expires_at` in epoch seconds or ISO 8601 with an
    offset). The token is reused until `expires_at`, else until its JWT `exp` minus 60 s,
    else for `ttl` seconds (and at least 5 s). Concurrent callers share one run, which a caller
    giving up (a fire's time budget) does not stop; a run past `timeout` seconds is killed.
    Its stderr is never logged, only its length; stdout past 64 KiB is refused."""

    def __init__(
        self, argv: list[str], *, ttl: float, timeout: float, clock: Clock = utc_now
    ) -> None:
        if not argv:
            raise ValueError(f"{COMMAND_SETTING} names no program")
        self.argv = argv
        self.ttl = timedelta(seconds=ttl)
        self.timeout = timeout
        self.clock = clock
        self._issued: _Issued | None = None
        self._failure: tuple[str, datetime] | None = None  # the last failure, held until
        self._lock = asyncio.Lock()
        self._running: asyncio.Task[str] | None = None

    async def token(self) -> str:
        async with self._lock:
            if self._issued is not None and self.clock() < self._issued.until:
                return self._issued.token
            return await self._issue()

    async def refresh(self, refused: str | None = None) -> str:
        async with self._lock:
            issued = self._issued
            if (
                issued is not None
                and refused is not None
                and issued.token != refused
                and self.clock() < issued.until
            ):
                return issued.token  # another call refreshed it meanwhile
            return await self._issue()

    async def _issue(self) -> str:
        """The shared run's token. The run is its own task: a caller cancelled while waiting
        (past its time budget) leaves it to finish for the next caller."""
        if self._running is None:
            self._running = asyncio.create_task(self._issue_once(), name="nas-token-command")
            self._running.add_done_callback(self._ran)
        return await asyncio.shield(self._running)

    def _ran(self, task: asyncio.Task[str]) -> None:
        if self._running is task:
            self._running = None
        if not task.cancelled():
            task.exception()  # retrieved: a failure nobody awaited is not "never retrieved"

    async def _issue_once(self) -> str:
        now = self.clock()
        if self._failure is not None and now < self._failure[1]:
            raise CredentialsUnavailable(self._failure[0])
        try:
            issued = _parse_output(await self._run(), now, self.ttl)
        except CredentialsUnavailable as exc:
            self._issued = None
            self._failure = (str(exc), now + COMMAND_FAILURE_HOLD)
            raise
        self._issued, self._failure = issued, None
        return issued.token

    async def _run(self) -> bytes:
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise CredentialsUnavailable(
                f"{COMMAND_SETTING}: cannot run {self.argv[0]}: {exc.strerror}"
            ) from exc
        assert process.stdout is not None and process.stderr is not None
        try:
            (stdout, printed), (_, stderr_bytes), _ = await asyncio.wait_for(
                asyncio.gather(
                    _drain(process.stdout, COMMAND_MAX_OUTPUT),
                    _drain(process.stderr, 0),
                    process.wait(),
                ),
                self.timeout,
            )
        except TimeoutError:
            raise CredentialsUnavailable(
                f"{COMMAND_SETTING}: timed out after {self.timeout:g}s"
            ) from None
        finally:
            if process.returncode is None:  # timed out, or the caller was cancelled
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if process.returncode != 0:
            log.warning(
                "NAS token command failed; stderr: %d bytes withheld",
                stderr_bytes,
                extra={"exit_code": process.returncode, "stderr_bytes": stderr_bytes},
            )
            raise CredentialsUnavailable(
                f"{COMMAND_SETTING}: exited with code {process.returncode}"
            )
        if printed > COMMAND_MAX_OUTPUT:
            raise CredentialsUnavailable(
                f"{COMMAND_SETTING}: printed more than {COMMAND_MAX_OUTPUT} bytes"
            )
        return stdout


async def _drain(stream: asyncio.StreamReader, keep: int) -> tuple[bytes, int]:
    """Read `stream` to its end, keeping its first `keep` bytes; returns them and the total."""
    kept = bytearray()
    total = 0
    while chunk := await stream.read(65536):
        total += len(chunk)
        if len(kept) < keep:
            kept += chunk[: keep - len(kept)]
    return bytes(kept), total


def _parse_output(stdout: bytes, now: datetime, ttl: timedelta) -> _Issued:
    """The token a command printed, and until when to reuse it. Never echoes the output."""
    try:
        text = stdout.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CredentialsUnavailable(f"{COMMAND_SETTING}: printed something not UTF-8") from None
    if not text.startswith("{"):
        token = _checked(text, COMMAND_SETTING)
        return _Issued(token, _reuse_until(_jwt_expiry(token) or now + ttl, now))
    try:
        data = json.loads(text)
    except ValueError:
        raise CredentialsUnavailable(f"{COMMAND_SETTING}: printed invalid JSON") from None
    raw = data.get("token") if isinstance(data, dict) else None
    if not isinstance(raw, str):
        raise CredentialsUnavailable(f"{COMMAND_SETTING}: JSON without a string 'token'")
    token = _checked(raw, COMMAND_SETTING)
    expires_at = _expires_at(data.get("expires_at"))
    return _Issued(token, _reuse_until(expires_at or _jwt_expiry(token) or now + ttl, now))


def _reuse_until(until: datetime, now: datetime) -> datetime:
    return max(until, now + COMMAND_MIN_REUSE)


def _expires_at(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return parse_instant(value)
        except InvalidInstant:
            pass
    elif (epoch := _from_epoch(value)) is not None:
        return epoch
    raise CredentialsUnavailable(
        f"{COMMAND_SETTING}: 'expires_at' is neither epoch seconds nor ISO 8601 with an offset"
    )


def _jwt_expiry(token: str) -> datetime | None:
    """The JWT's `exp` minus a margin, read without verification; None for other tokens."""
    if token.count(".") != 2:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = _from_epoch(claims.get("exp"))
    return exp - JWT_EXP_MARGIN if exp is not None else None


def _from_epoch(value: object) -> datetime | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def build_credentials(settings: Settings) -> NasCredentials:
    """The credentials the settings name (exactly one source: `fire_config_problems` checks)."""
    if settings.nas_token_command:
        return CommandToken(
            shlex.split(settings.nas_token_command),
            ttl=settings.nas_token_command_ttl_seconds,
            timeout=settings.nas_token_command_timeout_seconds,
        )
    if settings.nas_token_file is not None:
        return FileToken(settings.nas_token_file)
    return StaticToken(settings.nas_token_value() or "")
