"""Pure schedule logic: parsing and next-fire computation. No clock, no I/O: pass `now` in."""

from app.schedule.core import (
    Schedule,
    ScheduleError,
    first_fire,
    next_fire_after,
    parse_schedule,
    to_utc_second,
    upcoming_fires,
)

__all__ = [
    "Schedule",
    "ScheduleError",
    "first_fire",
    "next_fire_after",
    "parse_schedule",
    "to_utc_second",
    "upcoming_fires",
]
