"""The agent's NAS credentials: a token file re-read when it changes, and a token command run
for real (a small Python script in `tmp_path`) with its answer cached as long as it is good."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from app.nas import (
    CommandToken,
    CredentialsUnavailable,
    FileToken,
    StaticToken,
    build_credentials,
)
from app.settings import Settings
from tests.support import ManualUtcClock

pytestmark = pytest.mark.asyncio

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


# -- a fixed token -------------------------------------------------------------------------


async def test_a_static_token_is_the_same_after_a_refresh() -> None:
    credentials = StaticToken("the-token")
    assert await credentials.token() == "the-token"
    assert await credentials.refresh("the-token") == "the-token"


async def test_an_empty_static_token_names_the_setting() -> None:
    with pytest.raises(CredentialsUnavailable, match="CHRONOS_NAS_TOKEN: the token is empty"):
        await StaticToken("").token()


# -- a token file --------------------------------------------------------------------------


def rewrite_in_place_keeping_its_signature(path: Path, text: str) -> None:
    """New content of the same size, in the same inode, with the old modification time: a
    change that `FileToken` cannot see without reading."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    with path.open("r+", encoding="utf-8") as f:
        f.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


async def test_a_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    path = tmp_path / "nas-token"
    path.write_text("  token-one\n")
    assert await FileToken(path).token() == "token-one"


async def test_a_rewritten_token_file_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "nas-token"
    path.write_text("token-one\n")
    credentials = FileToken(path)
    assert await credentials.token() == "token-one"

    path.write_text("token-two-rotated\n")  # another size
    assert await credentials.token() == "token-two-rotated"


async def test_a_secret_swapped_by_rename_is_picked_up(tmp_path: Path) -> None:
    """A mounted secret is replaced by an atomic rename: same size, same time, new inode."""
    path = tmp_path / "nas-token"
    path.write_text("token-aaa\n")
    credentials = FileToken(path)
    assert await credentials.token() == "token-aaa"

    staged = tmp_path / "nas-token.new"
    staged.write_text("token-bbb\n")
    stat = path.stat()
    os.utime(staged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(staged, path)
    assert await credentials.token() == "token-bbb"


async def test_an_unchanged_token_file_is_not_read_again(tmp_path: Path) -> None:
    path = tmp_path / "nas-token"
    path.write_text("token-aaa\n")
    credentials = FileToken(path)
    assert await credentials.token() == "token-aaa"

    rewrite_in_place_keeping_its_signature(path, "token-bbb\n")
    assert await credentials.token() == "token-aaa"  # only stat-ed: nothing changed
    # A refresh (NAS refused the token) reads it whatever its signature.
    assert await credentials.refresh("token-aaa") == "token-bbb"
    assert await credentials.token() == "token-bbb"


@pytest.mark.parametrize("text", ["", " \n"])
async def test_an_empty_token_file_names_the_setting(tmp_path: Path, text: str) -> None:
    path = tmp_path / "nas-token"
    path.write_text(text)
    with pytest.raises(CredentialsUnavailable) as caught:
        await FileToken(path).token()
    assert str(caught.value).startswith("CHRONOS_NAS_TOKEN_FILE")
    assert "empty" in str(caught.value)
    assert caught.value.transient


async def test_a_missing_token_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(CredentialsUnavailable) as caught:
        await FileToken(tmp_path / "missing").token()
    assert str(caught.value).startswith("CHRONOS_NAS_TOKEN_FILE: cannot read")


async def test_a_file_being_rewritten_keeps_the_last_token_until_a_refresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sidecar that truncates, then writes: calls in between keep the last good token;
    a refresh (after NAS refused it) does not pretend, it fails."""
    path = tmp_path / "nas-token"
    path.write_text("token-one\n")
    credentials = FileToken(path)
    assert await credentials.token() == "token-one"

    path.write_text("")
    with caplog.at_level(logging.WARNING):
        assert await credentials.token() == "token-one"
    assert "keeping the last token" in caplog.text
    with pytest.raises(CredentialsUnavailable, match="empty"):
        await credentials.refresh("token-one")

    path.write_text("token-two\n")
    assert await credentials.token() == "token-two"


async def test_a_token_that_cannot_be_a_header_is_refused_without_echoing_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nas-token"
    path.write_text("two words\n")
    with pytest.raises(CredentialsUnavailable) as caught:
        await FileToken(path).token()
    assert "words" not in str(caught.value)


# -- a token command -----------------------------------------------------------------------

SCRIPT = """
import os, pathlib, sys, time
here = pathlib.Path(__file__).parent
(here / "pid.txt").write_text(str(os.getpid()))
with open(here / "runs.log", "a") as runs:
    runs.write("run\\n")
def setting(name, default):
    path = here / name
    return path.read_text() if path.exists() else default
time.sleep(float(setting("sleep.txt", "0")))
sys.stderr.write(setting("stderr.txt", ""))
sys.stdout.write(setting("answer.txt", ""))
sys.exit(int(setting("exit.txt", "0")))
"""


class TokenCommand:
    """A real token command: prints `answer`, writes `stderr`, exits with `exit_code`, after
    `sleep` seconds; counts its runs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(exist_ok=True)
        (folder / "get_token.py").write_text(SCRIPT)
        self.argv = [sys.executable, str(folder / "get_token.py")]

    def answer(self, text: str) -> None:
        (self.folder / "answer.txt").write_text(text)

    def answer_json(self, **data: Any) -> None:
        self.answer(json.dumps(data))

    def fail(self, exit_code: int, stderr: str = "") -> None:
        (self.folder / "exit.txt").write_text(str(exit_code))
        (self.folder / "stderr.txt").write_text(stderr)

    def recover(self) -> None:
        (self.folder / "exit.txt").unlink()

    def sleep(self, seconds: float) -> None:
        (self.folder / "sleep.txt").write_text(str(seconds))

    @property
    def runs(self) -> int:
        log = self.folder / "runs.log"
        return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture
def command(tmp_path: Path) -> TokenCommand:
    return TokenCommand(tmp_path / "command")


@pytest.fixture
def clock() -> ManualUtcClock:
    return ManualUtcClock(T0)


def token_command(
    command: TokenCommand, clock: ManualUtcClock, *, ttl: float = 300, timeout: float = 10
) -> CommandToken:
    return CommandToken(command.argv, ttl=ttl, timeout=timeout, clock=clock)


def signed_jwt(exp: datetime) -> str:
    return jwt.encode({"sub": "agent", "exp": int(exp.timestamp())}, "k" * 32, algorithm="HS256")


async def test_a_bare_token_is_cached_for_the_ttl(
    command: TokenCommand, clock: ManualUtcClock
) -> None:
    command.answer("token-one\n")
    credentials = token_command(command, clock, ttl=120)
    assert await credentials.token() == "token-one"
    command.answer("token-two\n")

    clock.advance(119)
    assert await credentials.token() == "token-one"
    assert command.runs == 1

    clock.advance(1)
    assert await credentials.token() == "token-two"
    assert command.runs == 2


@pytest.mark.parametrize(
    "expires_at", ["2030-01-01T13:00:00Z", "2030-01-01T14:00:00+01:00", 1893502800]
)
async def test_json_with_expires_at_is_cached_until_then(
    command: TokenCommand, clock: ManualUtcClock, expires_at: str | int
) -> None:
    assert datetime.fromtimestamp(1893502800, UTC) == T0 + timedelta(hours=1)
    command.answer_json(token="token-one", expires_at=expires_at)
    credentials = token_command(command, clock, ttl=60)
    assert await credentials.token() == "token-one"

    clock.advance(3599)  # well past the TTL: expires_at wins
    assert await credentials.token() == "token-one"
    assert command.runs == 1

    clock.advance(1)
    await credentials.token()
    assert command.runs == 2


async def test_a_jwt_is_cached_until_its_exp_minus_a_minute(
    command: TokenCommand, clock: ManualUtcClock
) -> None:
    token = signed_jwt(T0 + timedelta(minutes=30))
    command.answer(token + "\n")
    credentials = token_command(command, clock, ttl=60)
    assert await credentials.token() == token

    clock.advance(29 * 60 - 1)
    assert await credentials.token() == token
    assert command.runs == 1

    clock.advance(1)  # exp - 60 s
    await credentials.token()
    assert command.runs == 2


async def test_json_without_expires_at_falls_back_to_the_jwt_exp(
    command: TokenCommand, clock: ManualUtcClock
) -> None:
    token = signed_jwt(T0 + timedelta(minutes=10))
    command.answer_json(token=token, expires_at=None)
    credentials = token_command(command, clock, ttl=30)
    await credentials.token()
    clock.advance(9 * 60 - 1)
    await credentials.token()
    assert command.runs == 1


async def test_something_that_only_looks_like_a_jwt_gets_the_ttl(
    command: TokenCommand, clock: ManualUtcClock
) -> None:
    command.answer("not.a.jwt\n")
    credentials = token_command(command, clock, ttl=30)
    assert await credentials.token() == "not.a.jwt"
    clock.advance(30)
    await credentials.token()
    assert command.runs == 2


async def test_concurrent_callers_share_one_run(
    command: TokenCommand, clock: ManualUtcClock
) -> None:
    command.answer("token-one")
    command.sleep(0.3)
    credentials = token_command(command, clock)
    tokens = await asyncio.gather(*(credentials.token() for _ in range(5)))
    assert tokens == ["token-one"] * 5
    assert command.runs == 1


async def test_a_refresh_runs_the_command_again_once_for_all_who_were_refused(
    command: TokenCommand, clock: ManualUtcClock
) -> None:
    command.answer("token-one")
    credentials = token_command(command, clock)
    assert await credentials.token() == "token-one"

    command.answer("token-two")
    # Two calls refused with token-one at once: the command runs once, both get token-two.
    refreshed = await asyncio.gather(*(credentials.refresh("token-one") for _ in range(2)))
    assert refreshed == ["token-two", "token-two"]
    assert command.runs == 2
    assert await credentials.token() == "token-two"
    assert command.runs == 2


async def test_a_failed_command_names_the_setting_and_exit_code_never_its_stderr(
    command: TokenCommand, clock: ManualUtcClock, caplog: pytest.LogCaptureFixture
) -> None:
    secret_stderr = "vault: permission denied for token s.SECRET-IN-STDERR"
    command.fail(3, stderr=secret_stderr)
    credentials = token_command(command, clock)

    with caplog.at_level(logging.DEBUG), pytest.raises(CredentialsUnavailable) as caught:
        await credentials.token()

    assert str(caught.value) == "CHRONOS_NAS_TOKEN_COMMAND: exited with code 3"
    assert caught.value.transient
    logged = [(r.getMessage(), repr(r.__dict__)) for r in caplog.records]
    assert logged, "the failure is logged"
    assert not any("SECRET-IN-STDERR" in text for pair in logged for text in pair)
    assert f"stderr: {len(secret_stderr)} bytes withheld" in caplog.text


async def test_a_failed_command_is_not_run_again_for_a_few_seconds(
    command: TokenCommand, clock: ManualUtcClock
) -> None:
    command.fail(1)
    credentials = token_command(command, clock)
    for _ in range(3):
        with pytest.raises(CredentialsUnavailable, match="exited with code 1"):
            await credentials.token()
    assert command.runs == 1

    command.recover()
    command.answer("token-one")
    clock.advance(5)
    assert await credentials.token() == "token-one"
    assert command.runs == 2


async def test_a_command_past_its_timeout_is_killed(
    command: TokenCommand, clock: ManualUtcClock
) -> None:
    command.answer("token-one")
    command.sleep(30)
    credentials = token_command(command, clock, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(CredentialsUnavailable) as caught:
        await credentials.token()
    assert time.monotonic() - started < 5
    assert str(caught.value) == "CHRONOS_NAS_TOKEN_COMMAND: timed out after 0.3s"


async def test_a_caller_that_gives_up_leaves_the_run_to_the_next_caller(
    command: TokenCommand, clock: ManualUtcClock
) -> None:
    """The fire path bounds its push in time; a command slower than that budget still
    finishes, once, and serves the next call."""
    command.answer("tok-after-a-slow-run")
    command.sleep(0.5)
    credentials = token_command(command, clock)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await credentials.token()
    assert await credentials.token() == "tok-after-a-slow-run"
    assert command.runs == 1


async def test_a_run_past_the_timeout_is_killed(
    command: TokenCommand, clock: ManualUtcClock
) -> None:
    command.sleep(30)
    pid_file = command.folder / "pid.txt"
    with pytest.raises(CredentialsUnavailable, match="timed out"):
        await token_command(command, clock, timeout=0.5).token()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


async def test_a_token_already_expired_is_still_reused_briefly(
    command: TokenCommand, clock: ManualUtcClock
) -> None:
    command.answer_json(token="tok-expired", expires_at=(T0 - timedelta(minutes=1)).isoformat())
    credentials = token_command(command, clock)
    assert await credentials.token() == "tok-expired"
    assert await credentials.token() == "tok-expired"
    assert command.runs == 1  # not a run per NAS call; a refusal forces a new one
    assert await credentials.refresh("tok-expired") == "tok-expired"
    assert command.runs == 2


async def test_output_past_64_kib_is_refused(command: TokenCommand, clock: ManualUtcClock) -> None:
    command.answer("x" * (64 * 1024 + 10))
    with pytest.raises(CredentialsUnavailable, match="more than"):
        await token_command(command, clock).token()


@pytest.mark.parametrize(
    ("output", "complaint"),
    [
        ("", "the token is empty"),
        ("token-one\nsecond-line-SECRET", "not one printable ASCII word"),
        ('{"token": "tok-SECRET"', "printed invalid JSON"),
        ('{"access": "tok-SECRET"}', "JSON without a string 'token'"),
        ('{"token": "tok-SECRET", "expires_at": "soon"}', "'expires_at' is neither"),
        ('{"token": "tok-SECRET", "expires_at": "2030-01-01T13:00:00"}', "'expires_at'"),
    ],
)
async def test_an_unusable_answer_is_refused_without_echoing_it(
    command: TokenCommand, clock: ManualUtcClock, output: str, complaint: str
) -> None:
    command.answer(output)
    with pytest.raises(CredentialsUnavailable) as caught:
        await token_command(command, clock).token()
    assert str(caught.value).startswith("CHRONOS_NAS_TOKEN_COMMAND")
    assert complaint in str(caught.value)
    assert "SECRET" not in str(caught.value)


async def test_a_command_that_cannot_start_names_its_program(
    tmp_path: Path, clock: ManualUtcClock
) -> None:
    missing = str(tmp_path / "no-such-program")
    credentials = CommandToken([missing, "--secret-arg"], ttl=300, timeout=10, clock=clock)
    with pytest.raises(CredentialsUnavailable) as caught:
        await credentials.token()
    assert str(caught.value).startswith(f"CHRONOS_NAS_TOKEN_COMMAND: cannot run {missing}")
    assert "--secret-arg" not in str(caught.value)


# -- from the settings ---------------------------------------------------------------------


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


async def test_the_settings_choose_the_credentials(tmp_path: Path, command: TokenCommand) -> None:
    assert isinstance(build_credentials(settings(nas_token="fixed")), StaticToken)
    assert await build_credentials(settings(nas_token="fixed")).token() == "fixed"

    path = tmp_path / "nas-token"
    path.write_text("from-file\n")
    from_file = build_credentials(settings(nas_token_file=str(path)))
    assert isinstance(from_file, FileToken)
    assert await from_file.token() == "from-file"

    command.answer("from-command")
    argv = " ".join(f"'{arg}'" for arg in command.argv)
    from_command = build_credentials(
        settings(nas_token_command=argv, nas_token_command_timeout_seconds=5)
    )
    assert isinstance(from_command, CommandToken)
    assert from_command.timeout == 5
    assert await from_command.token() == "from-command"
