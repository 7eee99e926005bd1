"""Running a `python` target: calling an importable function with the target's kwargs.

Returning → succeeded, raising → failed (`<ExcType>: <message>`), over time → timed_out.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import inspect
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from app.domain.states import RunStatus
from app.runner.targets.capture import bound_text
from app.runner.targets.models import PythonTarget
from app.runner.targets.result import RunResult

T = TypeVar("T")


class PythonWorkers:
    """The bounded thread pool python targets use (`CHRONOS_PYTHON_WORKERS`): their modules
    are imported and their plain functions called there, never on the event loop. A call
    waits for a free worker; its timeout counts from the moment it was asked for."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("python workers must be at least 1")
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chronos-python")

    async def call(self, func: Callable[..., T], /, **kwargs: Any) -> T:
        """`func(**kwargs)` in a worker, with the caller's context (its log fields)."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, func, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def close(self) -> None:
        """Stop taking calls; a call still running keeps its thread until it returns."""
        self._pool.shutdown(wait=False, cancel_futures=True)


async def execute_python(
    target: PythonTarget, max_output_bytes: int, workers: PythonWorkers
) -> RunResult:
    """Load and call the function and map the outcome; only our own cancellation propagates.

    The module is imported in a worker thread (an import may be slow or block). A coroutine
    function is awaited on the event loop; a plain function runs in a worker so it never
    blocks the loop. Both get `**kwargs`. The timeout covers the import and the call. On
    timeout a coroutine is cancelled, but a thread cannot be killed: a timed-out plain
    function keeps running in its thread (and holds a worker) until it returns on its own.
    Return values: None → no output, a str as-is, anything else as JSON (`default=str`).
    """
    deadline = asyncio.timeout(target.timeout_seconds)
    try:
        async with deadline:
            try:
                func = await workers.call(_resolve_callable, spec=target.callable)
            except (Exception, SystemExit) as exc:
                message = f"cannot load callable {target.callable!r}: {_describe_exception(exc)}"
                return RunResult(
                    RunStatus.FAILED, None, None, bound_text(message, max_output_bytes)
                )
            value = await _call(func, target.kwargs, workers)
    except TimeoutError as exc:
        if not deadline.expired():  # raised by the callable itself
            return RunResult(
                RunStatus.FAILED, None, None, bound_text(_describe_exception(exc), max_output_bytes)
            )
        return RunResult(
            RunStatus.TIMED_OUT,
            "timeout",
            None,
            f"{target.callable} did not return within {target.timeout_seconds:g}s",
        )
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # we are being cancelled
        # The callable raised CancelledError on its own: a failure like any other.
        return RunResult(RunStatus.FAILED, None, None, "CancelledError: the callable was cancelled")
    except (Exception, SystemExit) as exc:
        return RunResult(
            RunStatus.FAILED, None, None, bound_text(_describe_exception(exc), max_output_bytes)
        )
    return RunResult(
        RunStatus.SUCCEEDED, "returned", bound_text(_format_return(value), max_output_bytes), None
    )


def _resolve_callable(spec: str) -> Callable[..., Any]:
    module_name, _, attribute = spec.partition(":")
    module = importlib.import_module(module_name)
    func = getattr(module, attribute)
    if not callable(func):
        raise TypeError(f"{attribute!r} is a {type(func).__name__}, not a function")
    return func  # type: ignore[no-any-return]


async def _call(func: Callable[..., Any], kwargs: dict[str, Any], workers: PythonWorkers) -> Any:
    if inspect.iscoroutinefunction(func):
        return await func(**kwargs)
    value = await workers.call(func, **kwargs)
    if inspect.isawaitable(value):  # e.g. a partial or a callable object wrapping a coroutine
        value = await value
    return value


def _describe_exception(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _format_return(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError, RecursionError):
        return repr(value)
