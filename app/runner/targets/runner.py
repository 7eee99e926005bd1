"""`TargetRunner`: runs a target once per fire, dispatching on its kind to `http`, `command`
or `python`, and turns every failure into a `RunResult` (only cancellation propagates)."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from app.domain.states import RunStatus
from app.runner.targets.capture import MARKER_BYTES
from app.runner.targets.command import execute_command
from app.runner.targets.http import execute_http
from app.runner.targets.models import CommandTarget, HttpTarget, PythonTarget, Target
from app.runner.targets.python import PythonWorkers, execute_python
from app.runner.targets.result import RunContext, RunResult, target_secrets, utc_iso

# The logger name from before the split, so log records keep their `logger` field.
log = logging.getLogger("app.runner.targets")


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
        python_workers: int = 8,
    ) -> None:
        if max_output_bytes <= MARKER_BYTES:
            raise ValueError(f"max_output_bytes must be greater than {MARKER_BYTES}")
        if kill_grace_seconds < 0:
            raise ValueError("kill_grace_seconds must not be negative")
        self._http = http
        self.max_output_bytes = max_output_bytes
        self.kill_grace_seconds = kill_grace_seconds
        self._cleanups: set[asyncio.Task[None]] = set()
        self.python = PythonWorkers(python_workers)

    def close(self) -> None:
        """Release the python workers (those still running keep their thread to the end)."""
        self.python.close()

    async def run(self, target: Target, ctx: RunContext) -> RunResult:
        """Execute `target` for the fire `ctx`; see each kind's module for the mapping."""
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
                RunStatus.FAILED,
                None,
                None,
                f"internal error while running the target: {type(exc).__name__}",
            )
        # The target's own secrets never reach the store or logs: not in what an http or command
        # target printed, nor in the error a python target raised (its return value stays).
        secrets = target_secrets(target)
        if isinstance(target, PythonTarget):
            result = result.error_masked(secrets)
        else:
            result = result.masked(secrets)
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

    async def run_http(self, target: HttpTarget, ctx: RunContext) -> RunResult:
        """2xx → succeeded, other status → failed (`http <status>`), no answer in time → timed_out.

        Details in `app.runner.targets.http.execute_http`.
        """
        return await execute_http(self._http, target, ctx, self.max_output_bytes)

    async def run_command(self, target: CommandTarget, ctx: RunContext) -> RunResult:
        """exit 0 → succeeded, other exit → failed (`exit <code>`), over time → timed_out.

        The child's whole process group is killed on timeout or cancellation. Details in
        `app.runner.targets.command.execute_command`.
        """
        return await execute_command(
            target,
            ctx,
            max_output_bytes=self.max_output_bytes,
            kill_grace_seconds=self.kill_grace_seconds,
            cleanups=self._cleanups,
        )

    async def run_python(self, target: PythonTarget, ctx: RunContext) -> RunResult:
        """Returning → succeeded, raising → failed (`<ExcType>: <message>`), over time → timed_out.

        `ctx` is not passed to the callable. Details in
        `app.runner.targets.python.execute_python`.
        """
        return await execute_python(target, self.max_output_bytes, self.python)
