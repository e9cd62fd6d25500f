"""How receivers' answers are made storable: the rules of `attempt_text`, checked without a database."""

from __future__ import annotations

from chargewire.store.attempt_text import (
    MAX_HEADER_VALUE_CHARS,
    MAX_RESPONSE_HEADERS,
    storable_headers,
    storable_text,
)


def test_storable_text_escapes_nul_as_six_characters() -> None:
    assert storable_text("a\x00b", 100) == "a\\u0000b"


def test_storable_text_replaces_bytes_that_were_not_utf8_with_the_replacement_character() -> None:
    as_aiohttp_decodes = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert storable_text(as_aiohttp_decodes, 100) == "caf\ufffd"


def test_storable_text_keeps_valid_text_as_it_is_within_its_limit() -> None:
    assert storable_text("Grüße ⚡", 100) == "Grüße ⚡"
    assert storable_text("x" * 50, 10) == "x" * 10


def test_storable_headers_keeps_a_bounded_number_of_bounded_headers() -> None:
    headers = {f"X-{n}": "v" * 10_000 for n in range(1000)}
    kept = storable_headers(headers)
    assert len(kept) == MAX_RESPONSE_HEADERS
    assert all(len(value) == MAX_HEADER_VALUE_CHARS for value in kept.values())
