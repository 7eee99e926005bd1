"""Pure schedule logic: parsing and next-fire computation. No clock, no I/O: pass `now` in."""

from app.schedule.core import (
    MissedSlots,
    Schedule,
    ScheduleError,
    first_fire,
    missed_slots,
    next_fire_after,
    parse_schedule,
    to_utc_second,
    upcoming_fires,
)

__all__ = [
    "MissedSlots",
    "Schedule",
    "ScheduleError",
    "first_fire",
    "missed_slots",
    "next_fire_after",
    "parse_schedule",
    "to_utc_second",
    "upcoming_fires",
]
