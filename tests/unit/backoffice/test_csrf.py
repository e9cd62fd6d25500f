"""The CSRF checks: the session's token must come back, and a POST's origin must be this host."""

from __future__ import annotations

import pytest

from chargewire.backoffice.csrf import csrf_matches, new_csrf_token, same_origin


def test_the_session_token_matches_itself() -> None:
    token = new_csrf_token()
    assert csrf_matches(token, token)


@pytest.mark.parametrize("submitted", [None, "", "forged", 42, ["token"]])
def test_anything_but_the_session_token_is_refused(submitted: object) -> None:
    assert not csrf_matches(new_csrf_token(), submitted)


def test_a_session_without_a_token_matches_nothing() -> None:
    assert not csrf_matches("", "")


def test_tokens_are_unguessable_and_distinct() -> None:
    tokens = {new_csrf_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(token) >= 43 for token in tokens)


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "chargewire.example", True),
        ("https://chargewire.example", "chargewire.example", True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("https://CHARGEWIRE.example", "chargewire.example", True),
        ("https://evil.example", "chargewire.example", False),
        ("https://chargewire.example:8443", "chargewire.example", False),
        ("null", "chargewire.example", False),
        ("ftp://chargewire.example", "chargewire.example", False),
        ("https://chargewire.example", None, False),
    ],
)
def test_a_post_must_come_from_this_host(origin: str | None, host: str | None, allowed: bool) -> None:
    assert same_origin(origin, host) is allowed
