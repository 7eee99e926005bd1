"""The cron expression language, as crontab(5) reads it, strictly.

Five fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or JAN-DEC) and day
of week (0-7 or SUN-SAT; 0 and 7 are Sunday). A field is `*` or a comma list of terms; a term
is a value, a range `a-b` (`a <= b`: a range that wraps, such as `22-2`, is refused as crontab
refuses it; write `22-23,0-2`), and either may take a step: `*/n`, `a-b/n`, `a/n` (from `a`
to the end of the field). A step is 1 up to the number of values in the field. Names are
case-insensitive. The macros `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`
(`@midnight`) and `@hourly` stand for their five fields and are kept as written.

Day of month and day of week combine as in crontab: when either field starts with `*`
(`*`, `*/2`), a day must match both; when both are restricted, a day matching either runs.
So `0 0 */2 * 5` runs on odd-dated Fridays and `0 0 13 * 5` on every Friday and every 13th.

Extensions of other cron dialects (`L`, `W`, `#`, `?`, random `R` and hashed `H` fields, a
seconds field) are refused: each would mean something crontab does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_TERM = re.compile(r"^(?:(\*)|([0-9A-Z]+)(?:-([0-9A-Z]+))?)(?:/([0-9]+))?$")


class CronError(ValueError):
    """The expression is not one crontab accepts; the message names the field and why."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_from: int = 0

    @property
    def allowed(self) -> str:
        text = f"{self.low}-{self.high}"
        if self.names:
            text += f" or {self.names[0]}-{self.names[-1]}"
        return text

    def value(self, token: str) -> int:
        if token in self.names:
            return self.names.index(token) + self.names_from
        if not token.isdigit():
            raise CronError(f"{self.name}: {token!r} is not a value ({self.allowed})")
        number = int(token)
        if not self.low <= number <= self.high:
            raise CronError(f"{self.name}: {number} is out of range {self.allowed}")
        return number


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day-of-week", 0, 7, _DAYS, 0),
)


def _term_values(field: _Field, term: str) -> set[int]:
    if term == "R" or term.startswith("H"):
        # croniter's random and hashed fields would make fire times unpredictable.
        raise CronError(f"{field.name}: random or hashed cron fields are not supported ({term!r})")
    match = _TERM.match(term)
    if match is None:
        raise CronError(f"{field.name}: {term!r} is not a crontab term ({field.allowed})")
    star, start_text, end_text, step_text = match.groups()
    if star:
        start, end = field.low, field.high
    else:
        start = field.value(start_text)
        end = field.value(end_text) if end_text else (field.high if step_text else start)
        if end < start:
            named = start_text in field.names
            last, first = (field.names[-1], field.names[0]) if named else (field.high, field.low)
            raise CronError(
                f"{field.name}: range {term.split('/')[0]} runs backwards; crontab ranges do not"
                f" wrap (write {start_text}-{last},{first}-{end_text})"
            )
    step = 1
    if step_text is not None:
        step = int(step_text)
        count = field.high - field.low + 1 - (1 if field.name == "day-of-week" else 0)
        if not 1 <= step <= count:
            raise CronError(f"{field.name}: step {step} is out of range 1-{count}")
    return set(range(start, end + 1, step))


def _full(field: _Field) -> frozenset[int]:
    values = set(range(field.low, field.high + 1))
    return frozenset(values - {7} if field.name == "day-of-week" else values)


def _field_values(field: _Field, text: str) -> frozenset[int]:
    if not text:
        raise CronError(f"{field.name}: empty")
    values: set[int] = set()
    for term in text.split(","):
        values |= _term_values(field, term)
    if field.name == "day-of-week" and 7 in values:
        values = (values - {7}) | {0}  # 7 is Sunday too
    return frozenset(values)


@dataclass(frozen=True)
class CronExpression:
    """A parsed expression. `text` is as written (a macro stays a macro); `croniter_fields`
    is the same schedule spelled for croniter: plain value lists, no names, no ranges that
    croniter might read differently (it reads `9-9` as the whole field)."""

    text: str
    fields: tuple[str, ...]  # the five fields (a macro expanded), upper-cased
    values: tuple[frozenset[int], ...]
    day_or: bool  # both day fields restricted: a day matching either runs

    @property
    def fixed_hour(self) -> bool:
        """True when the hour field names hours (`9`, `1,13`, `9-17`), not `*` or `*/n`."""
        return not self.fields[1].startswith("*")

    @property
    def croniter_expression(self) -> str:
        spelled = [
            "*" if values == _full(field) else ",".join(map(str, sorted(values)))
            for field, values in zip(_FIELDS, self.values, strict=True)
        ]
        if self.day_or and "*" in (spelled[2], spelled[4]):
            # Either day field matches every day, so their union does: every day runs.
            spelled[2] = spelled[4] = "*"
        return " ".join(spelled)


@lru_cache(maxsize=4096)
def parse_cron(text: str) -> CronExpression:
    """Parse a crontab expression or macro; `CronError` names the field and the allowed range."""
    written = " ".join(text.split())
    expanded = MACROS.get(written.lower(), written)
    if expanded.startswith("@"):
        raise CronError(f"unknown macro {written!r}: use one of {', '.join(MACROS)}")
    fields = tuple(expanded.upper().split())
    if len(fields) != 5:
        raise CronError(
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week),"
            f" not {len(fields)}"
        )
    values = tuple(_field_values(f, t) for f, t in zip(_FIELDS, fields, strict=True))
    day_or = not (fields[2].startswith("*") or fields[4].startswith("*"))
    return CronExpression(
        text=written.lower() if written.startswith("@") else written,
        fields=fields,
        values=values,
        day_or=day_or,
    )


def hour_is_fixed(expression: str) -> bool:
    """True when the hour field names hours (`9`, `1,13`, `9-17`), not `*` or `*/n`."""
    return parse_cron(expression).fixed_hour
