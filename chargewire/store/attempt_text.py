"""What an attempt log row may hold: receivers' answers made storable, the same way on both databases.

A receiver may answer anything, and the log keeps what it said. Everything an attempt carries from outside
(the response's headers and body, and the error message and class, which quote its status line or a
broker's error) passes through these functions as the attempt is written, whichever channel made it and
whichever path records it (`DeliveryStore.record_attempts`, `StreamStore.record_batch`):

| what                          | becomes                                                               |
|-------------------------------|-----------------------------------------------------------------------|
| invalid UTF-8                 | U+FFFD (aiohttp hands such bytes on as lone surrogates, which neither |
|                               | driver can encode)                                                    |
| NUL                           | the six characters `\\u0000` (PostgreSQL text cannot hold NUL)       |
| response headers              | the first 64; names cut to 256 characters, values to 2,048            |
| response body                 | cut to 20,480 characters (the webhook channel reads 20 KB at most)    |
| error message                 | cut to 2,000 characters                                              |
| error class                   | cut to 40 characters (the column's width)                             |
| a delivery's last error       | cut to 1,000 characters (the column's width)                          |

Request headers are chargewire's own, built from validated events, and pass unchanged. The common case (ASCII
text without NUL, within the limits) costs a few constant-time checks per value.
"""

from __future__ import annotations

from dataclasses import replace

from chargewire.models import Attempt

NUL_ESCAPE = "\\u0000"
MAX_RESPONSE_HEADERS = 64
MAX_HEADER_NAME_CHARS = 256
MAX_HEADER_VALUE_CHARS = 2048
MAX_RESPONSE_BODY_CHARS = 20 * 1024
MAX_ERROR_MESSAGE_CHARS = 2000
MAX_ERROR_CLASS_CHARS = 40
MAX_LAST_ERROR_CHARS = 1000


def storable_text(text: str, limit: int) -> str:
    """`text` as both databases store it alike: valid UTF-8, NUL escaped, at most `limit` characters."""
    # isascii() is a flag lookup, so ASCII text (nearly every answer) skips the encoding check.
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if "\x00" in text:
        text = text.replace("\x00", NUL_ESCAPE)
    return text if len(text) <= limit else text[:limit]


def storable_headers(headers: dict[str, str]) -> dict[str, str]:
    """The first `MAX_RESPONSE_HEADERS` headers, each name and value made storable and cut to its limit."""
    if _plain(headers):
        return headers
    kept = list(headers.items())[:MAX_RESPONSE_HEADERS]
    return {
        storable_text(name, MAX_HEADER_NAME_CHARS): storable_text(value, MAX_HEADER_VALUE_CHARS) for name, value in kept
    }


def _plain(headers: dict[str, str]) -> bool:
    """Whether `headers` are storable as they are: checked in a few passes in C, as nearly all answers are."""
    names = "".join(headers)
    values = "".join(headers.values())
    return (
        len(headers) <= MAX_RESPONSE_HEADERS
        and names.isascii()
        and values.isascii()
        and "\x00" not in names
        and "\x00" not in values
        # All names within one name's limit, all values within one value's: then each is (the usual answer).
        and len(names) <= MAX_HEADER_NAME_CHARS
        and len(values) <= MAX_HEADER_VALUE_CHARS
    )


def storable_optional(text: str | None, limit: int) -> str | None:
    """`storable_text` of `text`, or None."""
    return None if text is None else storable_text(text, limit)


def bare_attempt(attempt: Attempt) -> Attempt:
    """`attempt` without anything from outside: the last form tried when the database refuses the storable one."""
    return replace(
        attempt,
        request_headers={},
        response_headers=None,
        response_body=None,
        error_message="The attempt's details could not be stored." if attempt.error_message else None,
        error_class=storable_optional(attempt.error_class, MAX_ERROR_CLASS_CHARS),
    )
