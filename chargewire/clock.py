"""The current time, always timezone-aware UTC, for the whole process: event times, delivery times and ids.

A benchmark that replays weeks of traffic in minutes moves it forward (`shift_to`); the service never does.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_shift_s = 0.0


def utcnow() -> datetime:
    """Now, in UTC, with microseconds."""
    return datetime.now(UTC) + timedelta(seconds=_shift_s)


def now_ms() -> int:
    """Now, in milliseconds since the epoch (what ids are made of)."""
    return int((time.time() + _shift_s) * 1000)


def shift_to(moment: datetime) -> None:
    """Make this process's clock read `moment` now and run on from there (a replay in compressed time)."""
    global _shift_s
    _shift_s = moment.timestamp() - time.time()
