"""Schedules: `in 90s`, an ISO 8601 instant, `every 5m`, or cron (five fields or a macro such
as `@daily`, see `crontab.py`) in an IANA zone.

Every instant computed here is timezone-aware UTC and a whole second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.schedule.cron import NoNextFire, next_cron_fire
from app.schedule.crontab import CronError, CronExpression, parse_cron

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DELAY_RE = re.compile(r"^in\s+(\d+)\s*([smhd])$", re.IGNORECASE)
_EVERY_RE = re.compile(r"^every\s+(\d+)\s*([smhd])$", re.IGNORECASE)
_MAX_SECONDS = 100 * 365 * 86400  # delays and intervals: a century at most
_PROBE_FROM = datetime(2000, 1, 1, tzinfo=UTC)  # a cron that matches nothing fails from here


class ScheduleError(ValueError):
    """The schedule or timezone text cannot be understood; the message says why."""


@dataclass(frozen=True)
class Schedule:
    kind: Literal["once", "interval", "cron"]
    text: str
    timezone: str = "UTC"
    at: datetime | None = None  # once, absolute
    delay: timedelta | None = None  # once, relative to the job's anchor
    period: timedelta | None = None  # interval
    cron: CronExpression | None = None  # cron

    @property
    def is_one_shot(self) -> bool:
        return self.kind == "once"


def to_utc_second(value: datetime) -> datetime:
    """Normalise an aware datetime to UTC; a naive one is taken as UTC. Drops sub-seconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def ceil_second(value: datetime) -> datetime:
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value


def load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(
            f"unknown timezone {name!r}: use an IANA name such as 'Europe/Paris'"
        ) from exc


def _duration(match: re.Match[str], what: str) -> timedelta:
    amount = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if amount <= 0:
        raise ScheduleError(f"{what} must be at least 1 second")
    if amount > _MAX_SECONDS:
        raise ScheduleError(f"{what} must be at most {_MAX_SECONDS // 86400} days")
    return timedelta(seconds=amount)


def parse_schedule(text: str, timezone: str = "UTC") -> Schedule:
    """Parse schedule text; raise `ScheduleError` naming what is wrong."""
    raw = (text or "").strip()
    if not raw:
        raise ScheduleError("schedule is empty")
    load_zone(timezone)
    if m := _DELAY_RE.match(raw):
        return Schedule("once", raw, timezone, delay=_duration(m, "a delay"))
    if m := _EVERY_RE.match(raw):
        return Schedule("interval", raw, timezone, period=_duration(m, "an interval"))
    fields = raw.split()
    # Six or seven fields are other dialects' seconds and years: refused as cron, saying so.
    if len(fields) in (5, 6, 7) or raw.startswith("@"):
        try:
            expression = parse_cron(raw)
        except CronError as exc:
            raise ScheduleError(f"invalid cron expression {raw!r}: {exc}") from exc
        try:
            next_cron_fire(expression, load_zone(timezone), _PROBE_FROM)
        except NoNextFire as exc:
            raise ScheduleError(f"cron expression {raw!r} matches no date") from exc
        return Schedule("cron", expression.text, timezone, cron=expression)
    if len(fields) == 1:
        try:
            at = datetime.fromisoformat(raw)  # 3.11 reads a trailing Z
        except ValueError:
            pass
        else:
            if at.tzinfo is None:
                at = at.replace(tzinfo=load_zone(timezone))
            try:
                return Schedule("once", raw, timezone, at=ceil_second(at))
            except OverflowError as exc:
                raise ScheduleError(f"{raw!r} is out of range") from exc
    raise ScheduleError(
        f"cannot parse schedule {raw!r}: use 'in 90s', an ISO 8601 time, "
        "'every 5m' (s, m, h or d), a 5-field cron expression or a macro such as '@daily'"
    )


def first_fire(schedule: Schedule, anchor: datetime) -> datetime | None:
    """The first fire of a job created at `anchor` (its creation instant).

    A one-shot returns its instant even when that is already past; callers decide.
    """
    anchor = ceil_second(anchor)
    if schedule.kind == "once":
        if schedule.at is not None:
            return schedule.at
        assert schedule.delay is not None
        return anchor + schedule.delay
    if schedule.kind == "interval":
        assert schedule.period is not None
        return anchor + schedule.period
    return next_fire_after(schedule, anchor, anchor)


def next_fire_after(schedule: Schedule, anchor: datetime, after: datetime) -> datetime | None:
    """The first fire strictly after `after`; None when the schedule has no more fires.

    Intervals keep their phase from `anchor`: after a late fire the next one is the next
    future slot in phase, never `late fire + period`.
    """
    after = to_utc_second(after)
    anchor = ceil_second(anchor)
    if schedule.kind == "once":
        at = first_fire(schedule, anchor)
        return at if at is not None and at > after else None
    if schedule.kind == "interval":
        assert schedule.period is not None
        period = int(schedule.period.total_seconds())
        elapsed = int((after - anchor).total_seconds())
        slots = elapsed // period + 1 if elapsed >= 0 else 1
        return anchor + timedelta(seconds=slots * period)
    assert schedule.cron is not None
    try:
        return next_cron_fire(schedule.cron, load_zone(schedule.timezone), after)
    except NoNextFire:
        return None


def upcoming_fires(
    schedule: Schedule, anchor: datetime, first: datetime | None, count: int
) -> list[datetime]:
    """Up to `count` fires: `first` (if any), then each next one after the previous."""
    result: list[datetime] = []
    current = first
    while current is not None and len(result) < count:
        result.append(current)
        current = next_fire_after(schedule, anchor, current)
    return result


@dataclass(frozen=True)
class MissedSlots:
    count: int  # at least 1; `capped` when counting stopped early
    last: datetime
    next_after: datetime | None  # the first fire after `now`
    capped: bool = False


def missed_slots(
    schedule: Schedule, anchor: datetime, first: datetime, now: datetime, *, cap: int = 1_000
) -> MissedSlots:
    """The slots from `first` (already due, `first <= now`) up to `now`, and the next one."""
    if schedule.kind == "interval":
        assert schedule.period is not None
        period = int(schedule.period.total_seconds())
        count = int((now - first).total_seconds()) // period + 1
        last = first + timedelta(seconds=(count - 1) * period)
        return MissedSlots(count, last, last + timedelta(seconds=period))
    count, last = 1, first
    current = next_fire_after(schedule, anchor, first)
    while current is not None and current <= now:
        if count >= cap:
            return MissedSlots(count, last, next_fire_after(schedule, anchor, now), capped=True)
        count, last = count + 1, current
        current = next_fire_after(schedule, anchor, current)
    return MissedSlots(count, last, current)
