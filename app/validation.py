"""The one formatter of validation errors: `field.path[index]: message`, joined by `; `.

Inputs are never echoed (a rejected value may be a secret). A tagged union (a target is
`http`, `command` or `python` by its `type`) reads as the field it is: pydantic's inserted tag
is dropped from the path, and a missing or unknown tag reads `field.type: must be one of …`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_LOCATIONS = ("body", "query", "path", "header")
_TAG_ERRORS = {"union_tag_invalid", "union_tag_not_found"}


def _path(parts: Sequence[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
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
