"""Importing a library without an optional dependency it would load for nothing."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


def import_without(name: str, *, optional: str) -> ModuleType:
    """Import `name` while `optional` looks uninstalled to it (a None in `sys.modules` makes
    `import optional` fail); `optional` stays importable for whoever needs it afterwards.
    No-op when either is imported already."""
    if name in sys.modules or optional in sys.modules:
        return importlib.import_module(name)
    sys.modules[optional] = None  # type: ignore[assignment]
    try:
        return importlib.import_module(name)
    finally:
        del sys.modules[optional]
