"""The current time, always timezone-aware UTC, for the whole process: event times, delivery times and ids.

A benchmark that replays weeks of traffic in minutes moves it forward (`shift_to`); the service never does.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_shift_s = 0.0
# The same shift as a timedelta, made once: building one per call was most of what utcnow cost (it is called
# several times per event).
_shift = timedelta(0)


def utcnow() -> datetime:
    """Now, in UTC, with microseconds."""
    now = datetime.now(UTC)
    return now + _shift if _shift_s else now


def now_ms() -> int:
    """Now, in milliseconds since the epoch (what ids are made of)."""
    return int((time.time() + _shift_s) * 1000)


def shift_to(moment: datetime) -> None:
    """Make this process's clock read `moment` now and run on from there (a replay in compressed time)."""
    global _shift_s, _shift
    _shift_s = moment.timestamp() - time.time()
    _shift = timedelta(seconds=_shift_s)
