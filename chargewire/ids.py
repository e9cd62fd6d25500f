"""Prefixed, time-ordered identifiers (`evt_`, `sub_`, `dlv_`, `att_`, `tok_`).

The part after the prefix is 26 characters of Crockford base32: 48 bits of milliseconds since the epoch,
then 80 random bits. Ids made later sort after earlier ones, which keeps cursor pages and indexes cheap.
Within one process they strictly increase, also within one millisecond (the random part then counts up
from the previous id's): a batch of events keeps its order, which per-entity ordering relies on.
"""

from __future__ import annotations

import secrets
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BODY_LENGTH = 26
_RANDOM_BITS = 80
_lock = threading.Lock()
_last_value = 0


def new_id(prefix: str, now_ms: int | None = None) -> str:
    """A new id such as `evt_01JD3Q9W8T2X6Z4C5V7B9N1M3K`, greater than every id this process made before."""
    global _last_value
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    with _lock:
        value = (millis << _RANDOM_BITS) | secrets.randbits(_RANDOM_BITS)
        if value <= _last_value:
            value = _last_value + 1
        _last_value = value
    chars = []
    for _ in range(_BODY_LENGTH):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def has_prefix(identifier: str, prefix: str) -> bool:
    """True when `identifier` is well formed and carries `prefix`."""
    head, sep, body = identifier.partition("_")
    return bool(sep) and head == prefix and len(body) == _BODY_LENGTH and all(c in _ALPHABET for c in body)
