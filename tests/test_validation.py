"""The one validation-error formatter, over real pydantic errors."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from app.validation import describe_validation_errors


class Http(BaseModel):
    type: Literal["http"]
    url: str


class Command(BaseModel):
    type: Literal["command"]
    argv: list[str] = Field(min_length=1)


class Job(BaseModel):
    name: str
    target: Annotated[Http | Command, Field(discriminator="type")]


UNIONS = {"target": ("http", "command")}


def errors_of(data: object) -> list[dict[str, object]]:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(Job).validate_python(data)
    return [dict(e) for e in caught.value.errors(include_input=False)]


def test_indexes_read_as_brackets_and_the_union_tag_is_dropped() -> None:
    errors = errors_of({"name": "n", "target": {"type": "command", "argv": ["ls", 3]}})
    assert describe_validation_errors(errors, tagged_unions=UNIONS) == (
        "target.argv[1]: Input should be a valid string"
    )


def test_an_unknown_tag_names_the_discriminator_and_the_choices() -> None:
    errors = errors_of({"name": "n", "target": {"type": "ftp"}})
    assert describe_validation_errors(errors, tagged_unions=UNIONS) == (
        "target.type: must be one of 'http', 'command'"
    )


def test_request_locations_are_not_part_of_the_name_and_a_prefix_is() -> None:
    error = {"loc": ("body", "schedule"), "msg": "Value error, is in the past", "type": "x"}
    assert describe_validation_errors([error]) == "schedule: is in the past"
    assert describe_validation_errors([{"loc": ("argv",), "msg": "bad"}], prefix=("target",)) == (
        "target.argv: bad"
    )


def test_limit_keeps_the_first_errors_and_no_input_is_echoed() -> None:
    secret = "s3cret-value"
    errors = errors_of({"name": 1, "target": {"type": "http", "url": 2, "x": secret}})
    described = describe_validation_errors(errors, tagged_unions=UNIONS, limit=1)
    assert described == "name: Input should be a valid string"
    assert secret not in describe_validation_errors(errors, tagged_unions=UNIONS)


def test_no_errors_read_as_an_invalid_request() -> None:
    assert describe_validation_errors([]) == "invalid request"
