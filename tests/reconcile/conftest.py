from __future__ import annotations

from tests.fire.conftest import agent, nas

__all__ = ["agent", "nas"]
