"""Running a `python` target: calling an importable function with the target's kwargs.

Returning → succeeded, raising → failed (`<ExcType>: <message>`), over time → timed_out.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
from collections.abc import Callable
from typing import Any

from app.domain.states import RunStatus
from app.runner.targets.capture import bound_text
from app.runner.targets.models import PythonTarget
from app.runner.targets.result import RunResult


async def execute_python(target: PythonTarget, max_output_bytes: int) -> RunResult:
    """Load and call the function and map the outcome; only our own cancellation propagates.

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
        return RunResult(RunStatus.FAILED, None, None, bound_text(message, max_output_bytes))

    deadline = asyncio.timeout(target.timeout_seconds)
    try:
        async with deadline:
            value = await _call(func, target.kwargs)
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


async def _call(func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(func):
        return await func(**kwargs)
    value = await asyncio.to_thread(func, **kwargs)
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
