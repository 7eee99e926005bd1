"""Cron in an IANA zone, with daylight-saving rules stated and kept.

Slots are local wall times produced by the cron expression; each is turned into instants:

- A local time that exists once is that instant.
- A local time in a **gap** (spring forward, or a skipped day):
  - a *fixed-hour* job (hour field of numbers, lists or ranges: `9`, `1,13`, `9-17`) runs at
    the first instant after the jump; several slots in one gap collapse into that one run;
  - a *wildcard or step hour* job (`*`, `*/n`) skips it: its rhythm is elapsed time, and the
    wall clock simply has no such minute.
- A local time in an **overlap** (fall back) happens twice:
  - a fixed-hour job runs once, at the first occurrence;
  - a wildcard or step hour job runs at both, keeping its elapsed-time rhythm.

Whether a job is fixed-hour is read from the hour field alone (`*/15 9 * * *` is fixed-hour).

The next fire is strictly after the given instant, never at a non-existent local time, and
every instant is a whole second in UTC. The search around a transition reaches back as far as
the zone's clock went back there (seven hours in Antarctica/Vostok), not a fixed margin.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from croniter.croniter import CroniterBadDateError

from app.schedule.crontab import CronExpression, parse_cron

# The smallest search margin: wider than the usual one- or two-hour overlaps.
_MIN_MARGIN = timedelta(hours=3)
_REACH = timedelta(hours=26)  # longer than any step of a zone's clock
MAX_YEARS_BETWEEN_MATCHES = 30  # 29 February on a Monday needs up to 28 years


class NoNextFire(ValueError):
    """The expression matches no date (30 February) within the search horizon."""


def _fall_back(zone: ZoneInfo, start: datetime, end: datetime) -> timedelta:
    """How far the zone's clock goes back between the instants `start` and `end` (zero when
    it does not): a local time within that much of a fall-back happens twice."""
    before, after = start.astimezone(zone).utcoffset(), end.astimezone(zone).utcoffset()
    if before is None or after is None or after >= before:
        return timedelta(0)
    return before - after


def _margin(back: timedelta) -> timedelta:
    return max(_MIN_MARGIN, back + timedelta(hours=1))


def _margin_after(zone: ZoneInfo, instant: datetime) -> timedelta:
    """How far before the local time of `instant` a slot may still fire after `instant`: the
    clock may go back by up to a day within the next day (Vostok went back seven hours)."""
    try:
        return _margin(_fall_back(zone, instant, instant + _REACH))
    except OverflowError:
        return _MIN_MARGIN


def _margin_before(zone: ZoneInfo, instant: datetime) -> timedelta:
    """How far past the local time of `instant` a slot may still fire before `instant`."""
    try:
        return _margin(_fall_back(zone, instant - _REACH, instant))
    except OverflowError:
        return _MIN_MARGIN


def _exists(local: datetime, zone: ZoneInfo) -> bool:
    aware = local.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == local


def _is_ambiguous(local: datetime, zone: ZoneInfo) -> bool:
    return (
        local.replace(tzinfo=zone, fold=0).utcoffset()
        != local.replace(tzinfo=zone, fold=1).utcoffset()
    )


def _end_of_gap(local: datetime, zone: ZoneInfo) -> datetime:
    """The first instant after the jump that skipped the non-existent `local`."""
    a = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    b = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = min(a, b), max(a, b)  # lo is before the transition, hi after it
    before = lo.astimezone(zone).utcoffset()
    low, high = 0, int((hi - lo).total_seconds())
    while low < high:  # smallest offset (seconds) whose instant is past the transition
        mid = (low + high) // 2
        if (lo + timedelta(seconds=mid)).astimezone(zone).utcoffset() != before:
            high = mid
        else:
            low = mid + 1
    return (lo + timedelta(seconds=low)).replace(microsecond=0)


def _instants(local: datetime, zone: ZoneInfo, fixed_hour: bool) -> list[datetime]:
    if not _exists(local, zone):
        return [_end_of_gap(local, zone)] if fixed_hour else []
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _is_ambiguous(local, zone) and not fixed_hour:
        return [first, local.replace(tzinfo=zone, fold=1).astimezone(UTC)]
    return [first]


def _steady(zone: ZoneInfo, instant: datetime, margin: timedelta) -> bool:
    """No offset change within `margin` around `instant`."""
    before = (instant - margin).astimezone(zone).utcoffset()
    return before == (instant + margin).astimezone(zone).utcoffset()


def _slots(expression: CronExpression, start: datetime) -> croniter:
    return croniter(
        expression.croniter_expression,
        start,
        ret_type=datetime,
        day_or=expression.day_or,
        max_years_between_matches=MAX_YEARS_BETWEEN_MATCHES,
    )


def next_cron_fire(expression: CronExpression | str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first fire of `expression` in `zone` strictly after the instant `after`."""
    if isinstance(expression, str):
        expression = parse_cron(expression)
    after = after.astimezone(UTC)
    fixed_hour = expression.fixed_hour
    margin = _margin_after(zone, after)
    if _steady(zone, after, margin):
        # Fast path: away from any transition, wall time and instants move together, so the
        # first slot after the local time of `after` is the answer, unless it sits next to a
        # transition itself.
        try:
            local = _slots(expression, after.astimezone(zone).replace(tzinfo=None)).get_next(
                datetime
            )
        except CroniterBadDateError as exc:
            raise NoNextFire(f"{expression.text!r} matches no date") from exc
        instants = _instants(local, zone, fixed_hour)
        if len(instants) == 1 and instants[0] > after and _steady(zone, instants[0], margin):
            return instants[0]
    start = after.astimezone(zone).replace(tzinfo=None, fold=0) - margin
    slots = _slots(expression, start)
    best: datetime | None = None
    while True:
        try:
            local = slots.get_next(datetime)
        except CroniterBadDateError as exc:
            if best is not None:
                return best
            raise NoNextFire(f"{expression.text!r} matches no date") from exc
        if best is not None and local > best.astimezone(zone).replace(tzinfo=None) + _margin_before(
            zone, best
        ):
            return best
        for instant in _instants(local, zone, fixed_hour):
            if instant > after and (best is None or instant < best):
                best = instant
