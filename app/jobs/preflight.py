"""Checks of a job's target that need the machine, made before anything is stored or armed.

A python target's module must be importable here: `importlib.util.find_spec` finds it (it
imports the parent packages, not the module itself), in a worker thread, never on the event
loop.
"""

from __future__ import annotations

import asyncio
import importlib.util

from app.errors import InvalidRequest
from app.runner.targets import PythonTarget, Target


def _module_found(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except Exception:  # a parent that is missing, not a package, or fails to import
        return False


async def require_runnable(target: Target) -> None:
    """`InvalidRequest` naming `target.callable` when a python target's module is not found."""
    if not isinstance(target, PythonTarget):
        return
    module = target.callable.partition(":")[0]
    if not await asyncio.to_thread(_module_found, module):
        raise InvalidRequest(f"target.callable: module {module!r} cannot be imported here")
