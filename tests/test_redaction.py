"""`app.redaction`: known secrets and credential-shaped text are masked with `***`, ordinary
text is left alone."""

from __future__ import annotations

import base64

import pytest

from app.redaction import (
    Secrets,
    header_secret_values,
    leaf_values,
    mask_credentials,
    url_without_userinfo,
    userinfo_values,
)

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("GET https://bob:s3cret@api.example/x?y=1", "GET https://***@api.example/x?y=1"),
        ("postgresql+asyncpg://app:pw@db:5432/chronos", "postgresql+asyncpg://***@db:5432/chronos"),
        ("Authorization: Bearer abcdef123456", "Authorization: Bearer ***"),
        ("basic dXNlcjpwYXNz", "basic ***"),
        (f"token {JWT} rejected", "token *** rejected"),
        ("/hook?access_token=abc&page=2", "/hook?access_token=***&page=2"),
        ("/hook?page=2&apiKey=abc", "/hook?page=2&apiKey=***"),
    ],
)
def test_credential_shapes_are_masked(text: str, masked: str) -> None:
    assert mask_credentials(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "exit 3",
        "cannot connect to 127.0.0.1:8080: All connection attempts failed",
        "http://example.com/path?page=2",
        "mail bob@example.com about the bearer of bad news",
        "POST /api/agent-cron/provision: HTTP 503",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert mask_credentials(text) == text


def test_url_userinfo_is_replaced_whole() -> None:
    assert url_without_userinfo("https://u:p@h:8443/a?b=c#d") == "https://***@h:8443/a?b=c#d"
    assert url_without_userinfo("https://token@h/") == "https://***@h/"
    assert url_without_userinfo("https://h/a@b") == "https://h/a@b"  # an @ in the path


def test_userinfo_values_cover_written_decoded_and_basic_forms() -> None:
    values = set(userinfo_values("http://us%40er:p%40ss@host/"))
    basic = base64.b64encode(b"us@er:p@ss").decode()
    assert {"us%40er:p%40ss", "us%40er", "p%40ss", "us@er", "p@ss", basic} <= values
    assert list(userinfo_values("http://host/")) == []


def test_leaf_values_walk_nested_kwargs() -> None:
    kwargs = {"a": "x1", "b": [1, {"c": "deep"}], "d": (2.5, None, True)}
    assert sorted(leaf_values(kwargs)) == ["1", "2.5", "deep", "x1"]


def test_header_values_give_the_credential_alone_too() -> None:
    headers = {"Authorization": "Bearer tok123", "X-Key": "k"}
    assert list(header_secret_values(headers)) == ["Bearer tok123", "tok123", "k"]


def test_secrets_mask_the_longest_value_first_and_skip_short_ones() -> None:
    secrets = Secrets(["abcd", "abcdefgh", "ab", ""])
    assert secrets.values == ("abcdefgh", "abcd")
    assert secrets.mask("x abcdefgh y abcd z ab") == "x *** y *** z ab"
    assert not Secrets(["1", "on"])


def test_a_secret_cut_short_at_the_end_is_masked() -> None:
    secrets = Secrets(["secret-value"])
    assert secrets.mask_cut("db: secret-va") == "db: ***"
    assert secrets.mask_cut("db: sec") == "db: sec"  # too little of it to matter
    assert secrets.mask_cut("db: ok") == "db: ok"
