"""Prefixed, time-ordered identifiers (`evt_`, `sub_`, `dlv_`, `att_`, `tok_`).

The part after the prefix is 26 characters of Crockford base32: 48 bits of milliseconds since the epoch,
then 80 random bits. Ids made later sort after earlier ones, which keeps cursor pages and indexes cheap.
Within one process they strictly increase, also within one millisecond (the random part then counts up
from the previous id's): a batch of events keeps its order, which per-entity ordering relies on. `new_ids`
makes a batch's ids with one random draw, counting up from it.
"""

from __future__ import annotations

import os
import threading

from chargewire import clock

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BODY_LENGTH = 26
_RANDOM_BITS = 80
# Encoding goes ten bits (two characters) at a time: the 26 characters are 13 pairs.
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
_BODY_PAIRS = _BODY_LENGTH // 2
# The ids of a batch differ only in their last few characters; the rest is encoded once per batch.
_TAIL_PAIRS = 2
_TAIL_BITS = _TAIL_PAIRS * 10
# Random parts are cut from one draw of the OS's randomness for this many ids: a draw per id was a system call per
# event, attempt and delivery (about 2 us each, the larger part of making an id).
_DRAWN_AT_ONCE = 256
_RANDOM_BYTES = _RANDOM_BITS // 8
_lock = threading.Lock()
_last_value = 0
_drawn = b""
_drawn_used = 0


def _forget_drawn() -> None:
    # A forked child must not reuse the random parts its parent has yet to use.
    global _drawn, _drawn_used
    _drawn, _drawn_used = b"", 0


os.register_at_fork(after_in_child=_forget_drawn)


def new_id(prefix: str, now_ms: int | None = None) -> str:
    """A new id such as `evt_01JD3Q9W8T2X6Z4C5V7B9N1M3K`, greater than every id this process made before."""
    return f"{prefix}_{_encode(_reserve(1, now_ms), _BODY_PAIRS)}"


def new_ids(prefix: str, count: int, now_ms: int | None = None) -> list[str]:
    """`count` new ids in increasing order, each greater than every id this process made before."""
    first = _reserve(count, now_ms)
    made: list[str] = []
    head_value, head = -1, ""
    for value in range(first, first + count):
        if value >> _TAIL_BITS != head_value:
            head_value = value >> _TAIL_BITS
            head = f"{prefix}_{_encode(head_value, _BODY_PAIRS - _TAIL_PAIRS)}"
        made.append(head + _PAIRS[(value >> 10) & 1023] + _PAIRS[value & 1023])
    return made


def first_id_at(prefix: str, at_ms: int) -> str:
    """The smallest possible id of `prefix` made at `at_ms`: every id made earlier sorts before it."""
    return f"{prefix}_{_encode(at_ms << _RANDOM_BITS, _BODY_PAIRS)}"


def made_at_ms(identifier: str) -> int:
    """When an id was made, in milliseconds since the epoch (the clock of the process that made it)."""
    body = identifier.partition("_")[2]
    value = 0
    for character in body[: _BODY_LENGTH - _RANDOM_BITS // 5]:
        value = value << 5 | _ALPHABET.index(character)
    return value


def _reserve(count: int, now_ms: int | None) -> int:
    """The first of `count` consecutive values that no id of this process has used yet."""
    global _last_value, _drawn, _drawn_used
    millis = clock.now_ms() if now_ms is None else now_ms
    with _lock:
        if _drawn_used >= len(_drawn):
            _drawn, _drawn_used = os.urandom(_RANDOM_BYTES * _DRAWN_AT_ONCE), 0
        random_part = int.from_bytes(_drawn[_drawn_used : _drawn_used + _RANDOM_BYTES])
        _drawn_used += _RANDOM_BYTES
        value = (millis << _RANDOM_BITS) | random_part
        if value <= _last_value:
            value = _last_value + 1
        _last_value = value + count - 1
    return value


def _encode(value: int, pairs: int) -> str:
    """The last `pairs` * 2 base32 characters of `value`."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in range((pairs - 1) * 10, -1, -10)])


def has_prefix(identifier: str, prefix: str) -> bool:
    """True when `identifier` is well formed and carries `prefix`."""
    head, sep, body = identifier.partition("_")
    return bool(sep) and head == prefix and len(body) == _BODY_LENGTH and all(c in _ALPHABET for c in body)
