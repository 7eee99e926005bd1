"""The one formatter of validation errors: `field.path[index]: message`, joined by `; `, and
the checks every string the service stores passes.

Inputs are never echoed (a rejected value may be a secret). A tagged union (a target is
`http`, `command` or `python` by its `type`) reads as the field it is: pydantic's inserted tag
is dropped from the path, and a missing or unknown tag reads `field.type: must be one of …`.

No stored string holds a NUL character (PostgreSQL text cannot) or a lone surrogate (a JSON
`\\ud800` escape makes one; it is not Unicode, so it can be neither stored nor answered).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, Field

# What the OpenAPI document says of every checked string; lone surrogates are refused too.
NO_NUL_PATTERN = r"^[^\x00]*$"
JSON_MAX_DEPTH = 32  # levels of arrays and objects in free-form JSON (python kwargs, http body)
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")

_LOCATIONS = ("body", "query", "path", "header")
_TAG_ERRORS = {"union_tag_invalid", "union_tag_not_found"}


def _path(parts: Sequence[Any]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = str(part)
            # A key that cannot be printed as is (NUL, surrogates, controls) reads as its repr.
            text += "." + (
                name if name.isprintable() and text_problem(name) is None else ascii(name)
            )
    return text.removeprefix(".")


def describe_error(
    error: Mapping[str, Any],
    *,
    prefix: Sequence[str] = (),
    tagged_unions: Mapping[str, Sequence[str]] | None = None,
) -> str:
    loc = list(error.get("loc", ()))
    if loc and loc[0] in _LOCATIONS:
        loc = loc[1:]  # where the value came from is not part of its name
    loc = [*prefix, *loc]
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    for field, tags in (tagged_unions or {}).items():
        if field not in loc:
            continue
        at = loc.index(field)
        if error.get("type") in _TAG_ERRORS:
            loc = [*loc[: at + 1], "type"]
            message = "must be one of " + ", ".join(repr(tag) for tag in tags)
        elif len(loc) > at + 1 and loc[at + 1] in tags:
            del loc[at + 1]
    return f"{_path(loc) or 'body'}: {message}"


def describe_validation_errors(
    errors: Iterable[Mapping[str, Any]],
    *,
    prefix: Sequence[str] = (),
    tagged_unions: Mapping[str, Sequence[str]] | None = None,
    limit: int | None = None,
) -> str:
    """One `path: message` per error (the first `limit` of them), joined by `; `."""
    described = [
        describe_error(error, prefix=prefix, tagged_unions=tagged_unions)
        for error in list(errors)[:limit]
    ]
    return "; ".join(described) or "invalid request"


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored or sent as text (NUL, lone surrogate), or None."""
    found = _BAD_TEXT.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL characters"
    return "must not contain lone surrogates (not valid Unicode)"


def check_text(value: str) -> str:
    """A pydantic validator: `value` unchanged, or `ValueError` saying what is wrong."""
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


SafeText = Annotated[
    str, AfterValidator(check_text), Field(json_schema_extra={"pattern": NO_NUL_PATTERN})
]


def json_problem(value: Any, at: tuple[Any, ...] = ()) -> str | None:
    """Why free-form JSON cannot be stored and answered, or None: a bad string (key or value)
    at any depth, a number that is not finite, or more than `JSON_MAX_DEPTH` levels. The
    answer names where, as `path: problem` (`a.b[2]: must not contain NUL characters`)."""
    if len(at) > JSON_MAX_DEPTH:
        return f"{_path(at)}: nested deeper than {JSON_MAX_DEPTH} levels"
    problem: str | None = None
    if isinstance(value, str):
        problem = text_problem(value)
    elif isinstance(value, float) and not math.isfinite(value):
        problem = "must be a finite number (not NaN or Infinity)"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            key_problem = text_problem(str(key))
            if key_problem is not None:
                return f"{_path(at) or 'key'}: {key_problem} (in a key)"
            if (found := json_problem(item, (*at, str(key)))) is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if (found := json_problem(item, (*at, index))) is not None:
                return found
    return None if problem is None else f"{_path(at) or 'value'}: {problem}"


def check_json(value: Any) -> Any:
    """A pydantic validator for free-form JSON: `value` unchanged, or `ValueError`."""
    problem = json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value
