"""Running a `command` target: a program without a shell, in a clean environment.

exit 0 → succeeded, other exit → failed (`exit <code>` or `signal <NAME>`), over time →
timed_out. The child leads its own session, so a timeout or cancellation kills its whole
process group (SIGTERM, then SIGKILL after the grace period) and reaps it; the executor cancels
a run whose lease another attempt took over, so that kills it too. The target's `env` values
are masked (`***`) in the result, even when the program prints them itself.

A run must not outlive its agent: after a `kill -9` (or OOM kill) of the agent, another replica
takes the fire over, and the old process must not keep running beside the new attempt. Its own
session is needed for the group kill above, so it cannot simply share the agent's process
group; instead, on Linux, the child asks the kernel for SIGKILL when its parent dies
(`prctl(PR_SET_PDEATHSIG)`, set between fork and exec). That covers the program itself, not the
processes it starts (the setting is not inherited across fork): in a container, those die with
the container's PID namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import pwd
import signal
import sys
from collections.abc import Callable, Sequence

from app.domain.states import RunStatus
from app.runner.targets.capture import BoundedCapture, bound_text
from app.runner.targets.models import CommandTarget
from app.runner.targets.result import RunContext, RunResult, target_secrets, utc_iso

# The logger name from before the split, so log records keep their `logger` field.
log = logging.getLogger("app.runner.targets")

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_LANG = "C.UTF-8"

_REAP_TIMEOUT_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


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
    env["CHRONOS_ATTEMPT"] = str(ctx.attempt)
    return env


def _home_of_current_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_dir or "/"
    except KeyError:
        return "/"


async def execute_command(
    target: CommandTarget,
    ctx: RunContext,
    *,
    max_output_bytes: int,
    kill_grace_seconds: float,
    cleanups: set[asyncio.Task[None]],
) -> RunResult:
    """Run the program and map its exit; only cancellation propagates, after the kill.

    No shell, stdin from /dev/null, a clean environment (`command_environment`). The run
    ends when the program has exited and closed its stdout and stderr: a background process
    that keeps them open keeps the run going until the timeout. A process that leaves the
    group (`setsid`) escapes the kill. `cleanups` holds the reaping tasks, which outlive a
    cancelled run.
    """
    result = await _run_program(target, ctx, max_output_bytes, kill_grace_seconds, cleanups)
    return result.masked(target_secrets(target))


async def _run_program(
    target: CommandTarget,
    ctx: RunContext,
    max_output_bytes: int,
    kill_grace_seconds: float,
    cleanups: set[asyncio.Task[None]],
) -> RunResult:
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
            preexec_fn=_die_with_parent_hook(),
        )
    except OSError as exc:
        return RunResult(
            RunStatus.FAILED,
            None,
            None,
            bound_text(_describe_spawn_error(exc, target), max_output_bytes),
        )

    stdout = BoundedCapture(max_output_bytes)
    stderr = BoundedCapture(max_output_bytes)
    readers = (
        asyncio.create_task(stdout.drain(proc.stdout)),
        asyncio.create_task(stderr.drain(proc.stderr)),
    )
    try:
        async with asyncio.timeout(target.timeout_seconds):
            await asyncio.wait(readers)
            returncode = await proc.wait()
    except TimeoutError:
        await _stop_process_group(proc, readers, kill_grace_seconds, cleanups)
        message = f"timed out after {target.timeout_seconds:g}s; the process group was killed"
        if err := stderr.text():
            message += f"\n{err}"
        return RunResult(
            RunStatus.TIMED_OUT, "timeout", stdout.text(), bound_text(message, max_output_bytes)
        )
    except BaseException:
        await _kill_and_reap(proc, readers, cleanups)
        raise

    if returncode == 0:
        return RunResult(RunStatus.SUCCEEDED, "exit 0", stdout.text(), stderr.text())
    outcome = _describe_returncode(returncode)
    return RunResult(
        RunStatus.FAILED, outcome, stdout.text(), stderr.text() or f"{program} ended with {outcome}"
    )


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A `preexec_fn` making the child die (SIGKILL) with the agent; None off Linux.

    It runs in the forked child before exec, so it only calls a foreign function prepared in
    the parent and never raises. The parent is the forking thread: the event loop's."""
    prctl = _libc_prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the agent died before the request took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return die_with_parent


@functools.cache
def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # The symbols the interpreter is linked with (libc's among them): no library search.
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        log.warning("prctl unavailable: command runs will not die with the agent")
        return None
    return prctl


async def _stop_process_group(
    proc: asyncio.subprocess.Process,
    readers: Sequence[asyncio.Task[None]],
    kill_grace_seconds: float,
    cleanups: set[asyncio.Task[None]],
) -> None:
    """SIGTERM the group, wait up to the grace period, then SIGKILL whatever is left."""
    exited = asyncio.ensure_future(proc.wait())
    try:
        _signal_group(proc.pid, signal.SIGTERM)
        await asyncio.wait({exited}, timeout=kill_grace_seconds)
    finally:
        exited.cancel()
        await _kill_and_reap(proc, readers, cleanups)


async def _kill_and_reap(
    proc: asyncio.subprocess.Process,
    readers: Sequence[asyncio.Task[None]],
    cleanups: set[asyncio.Task[None]],
) -> None:
    """SIGKILL the group and reap it; the reaping survives a cancellation of the caller."""
    _signal_group(proc.pid, signal.SIGKILL)
    cleanup = asyncio.ensure_future(_reap(proc, readers))
    # A reference is kept until the task is done: the event loop holds only a weak one.
    cleanups.add(cleanup)
    cleanup.add_done_callback(cleanups.discard)
    await asyncio.shield(cleanup)


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
