"""Rows of the one results table: figure, bare, Chronos, ratio, goal, met?"""

from __future__ import annotations

from typing import Any

X = "\N{MULTIPLICATION SIGN}"
DATABASES = (("sqlite", "SQLite"), ("postgres", "PostgreSQL"))


def row(
    figure: str,
    bare: float | None,
    agent: float | None,
    goal: tuple[str, float],
    fmt: str,
    unit: str = "",
    *,
    goal_text: str | None = None,
) -> dict[str, Any]:
    """A table row; `goal` is (">=", x): Chronos/bare at least x, or ("<=", x): at most x."""
    ratio = agent / bare if bare and agent is not None else None
    op, limit = goal
    met = None if ratio is None else (ratio >= limit if op == ">=" else ratio <= limit)
    return {
        "figure": figure,
        "bare": None if bare is None else f"{bare:{fmt}}{unit}",
        "chronos": None if agent is None else f"{agent:{fmt}}{unit}",
        "ratio": None if ratio is None else f"{ratio:.3g}{X}",
        "goal": goal_text or f"{'≥' if op == '>=' else '≤'} {limit}{X}",
        "met": None if met is None else ("yes" if met else "no"),
        "bare_value": bare,
        "chronos_value": agent,
        "ratio_value": ratio,
    }


def text_row(
    figure: str, bare: str, chronos: str, goal: str, met: bool | None, ratio: str = "—"
) -> dict[str, Any]:
    """A row whose goal is not a ratio to the bare figure."""
    return {
        "figure": figure,
        "bare": bare,
        "chronos": chronos,
        "ratio": ratio,
        "goal": goal,
        "met": "—" if met is None else ("yes" if met else "no"),
    }


def not_measured(figure: str, goal: str) -> dict[str, Any]:
    return text_row(figure, "not measured yet", "not measured yet", goal, None)


def failed(figure: str, goal: str, data: dict[str, Any]) -> dict[str, Any]:
    """The row of a measurement that failed (`data["error"]`, in latest.json)."""
    reason = str(data.get("error", "?")).splitlines()[0][:80]
    return text_row(figure, "—", f"failed: {reason}", goal, None)
