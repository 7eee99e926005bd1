"""The lateness chart of a job's recent runs: bar geometry for an inline SVG the template
draws (no script, no library). Pure."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.records import FireRecord
from app.ui.views import lateness_seconds, seconds_text, utc_text

WIDTH, HEIGHT = 640, 180
LEFT, BOTTOM, TOP = 56, 22, 12
_GOOD = {"succeeded", "running"}
MIN_SCALE_SECONDS = 0.01  # the top of the scale: never below 10 ms


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    tone: str  # a CSS class: ok, bad
    title: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class LatenessChart:
    width: int
    height: int
    left: int
    baseline: float
    bars: list[Bar]
    ticks: list[Tick]
    summary: str


def lateness_chart(runs: list[FireRecord]) -> LatenessChart | None:
    """Bars of started - fire_at for the runs that started, oldest on the left; None when
    none did. `runs` come newest first, as the store lists them."""
    started = [(run, lateness_seconds(run)) for run in reversed(runs)]
    points = [(run, late) for run, late in started if late is not None]
    if not points:
        return None
    worst = max(max(late for _, late in points), MIN_SCALE_SECONDS)
    plot_height = HEIGHT - BOTTOM - TOP
    baseline = float(HEIGHT - BOTTOM)
    slot = (WIDTH - LEFT - 8) / len(points)
    bars = []
    for index, (run, late) in enumerate(points):
        height = max(1.0, plot_height * max(late, 0.0) / worst)
        bars.append(
            Bar(
                x=round(LEFT + index * slot + slot * 0.15, 1),
                y=round(baseline - height, 1),
                width=round(max(slot * 0.7, 1.0), 1),
                height=round(height, 1),
                tone="ok" if str(run.status) in _GOOD else "bad",
                title=f"{utc_text(run.fire_at)}: {seconds_text(late)} late ({run.status})",
            )
        )
    ticks = [
        Tick(y=round(baseline - plot_height * share, 1), label=seconds_text(worst * share))
        for share in (0.0, 0.5, 1.0)
    ]
    ordered = sorted(late for _, late in points)
    median = ordered[len(ordered) // 2]
    summary = (
        f"{len(points)} runs: median {seconds_text(median)}, worst {seconds_text(ordered[-1])}"
    )
    return LatenessChart(WIDTH, HEIGHT, LEFT, baseline, bars, ticks, summary)
