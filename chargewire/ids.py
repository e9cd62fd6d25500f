"""Prefixed, time-ordered identifiers (`evt_`, `sub_`, `dlv_`, `att_`, `tok_`).

The part after the prefix is 26 characters of Crockford base32: 48 bits of milliseconds since the epoch,
then 80 random bits. Ids made later sort after earlier ones, which keeps cursor pages and indexes cheap.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BODY_LENGTH = 26


def new_id(prefix: str, now_ms: int | None = None) -> str:
    """A new id such as `evt_01JD3Q9W8T2X6Z4C5V7B9N1M3K`."""
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    value = (millis << 80) | secrets.randbits(80)
    chars = []
    for _ in range(_BODY_LENGTH):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def has_prefix(identifier: str, prefix: str) -> bool:
    """True when `identifier` is well formed and carries `prefix`."""
    head, sep, body = identifier.partition("_")
    return bool(sep) and head == prefix and len(body) == _BODY_LENGTH and all(c in _ALPHABET for c in body)
