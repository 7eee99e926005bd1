"""Dashboard sessions: signed, expiring, bound to the admin token, never holding it."""

from __future__ import annotations

from app.ui.session import SESSION_SECONDS, csrf_matches, new_session, read_session, token_matches

TOKEN = "admin-token-for-tests-0123456789"
NOW = 1_800_000_000.0


def test_a_new_session_reads_back_until_it_expires() -> None:
    session, cookie = new_session(TOKEN, NOW)
    assert TOKEN not in cookie
    assert read_session(cookie, TOKEN, NOW + 1) == session
    assert read_session(cookie, TOKEN, NOW + SESSION_SECONDS - 1) == session
    assert read_session(cookie, TOKEN, NOW + SESSION_SECONDS) is None


def test_another_admin_token_ends_every_session() -> None:
    _, cookie = new_session(TOKEN, NOW)
    assert read_session(cookie, TOKEN + "-rotated", NOW) is None


def test_forged_cookies_are_refused() -> None:
    _, cookie = new_session(TOKEN, NOW)
    expires, nonce, signature = cookie.split(".")
    for forged in (
        None,
        "",
        "garbage",
        f"{int(expires) + 1}.{nonce}.{signature}",
        f"{expires}.{nonce}x.{signature}",
        f"{expires}.{nonce}.{signature[:-1]}",
        f"{expires}.{nonce}.{signature}.extra",
        "é.é.é",
    ):
        assert read_session(forged, TOKEN, NOW) is None


def test_each_session_has_its_own_csrf_token() -> None:
    first, _ = new_session(TOKEN, NOW)
    second, _ = new_session(TOKEN, NOW)
    assert first.csrf != second.csrf
    assert csrf_matches(first.csrf, first)
    assert not csrf_matches(second.csrf, first)
    assert not csrf_matches(None, first)
    assert not csrf_matches("", first)
    assert not csrf_matches("é", first)


def test_the_login_token_is_compared_whole() -> None:
    assert token_matches(TOKEN, TOKEN)
    assert token_matches(f" {TOKEN}\n", TOKEN)
    assert not token_matches(TOKEN[:-1], TOKEN)
    assert not token_matches("", TOKEN)
    assert not token_matches("é" * 8, TOKEN)
