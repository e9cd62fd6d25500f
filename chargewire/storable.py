"""Whether a value from outside can be stored as it is on both databases: checked before a transaction."""

from __future__ import annotations

import math


def storable(value: object) -> bool:
    """True when every string in a JSON value can be stored as UTF-8 text (no NUL, no lone surrogate) and
    every number is finite: PostgreSQL refuses the rest, and that must be a 422, not a 500."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(storable(item) for item in value)
    if isinstance(value, dict):
        return all(storable(key) and storable(item) for key, item in value.items())
    return True
