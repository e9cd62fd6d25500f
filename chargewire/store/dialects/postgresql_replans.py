"""A statement prepared anew on its connection each time its work there doubles, for a plan of the tables as they are.

PostgreSQL makes a prepared statement's generic plan from the tables' sizes when it makes it, and keeps it. Made in
a young partition's first calls (a fresh database, or a day's partition at midnight) it scans that partition whole
ever after, until autovacuum next analyzes it: the announced claim took 30-47 ms by the end of a 10 s run, the
record of attempts 150-450 ms at 2,000 events/s (a sequential scan of every delivery of the day per record). Marking
the SQL anew (a comment) makes asyncpg prepare it, and PostgreSQL plan it, again, each time the statement's calls
(or the rows it wrote) on the connection double from a first count: at a steady rate a plan is made from at least
half the rows it meets, and a connection plans anew ~16 times in a million calls (each leaving a statement in
asyncpg's cache, which drops the least recently used).

Calls count only what this connection does, while others fill the tables: a claim that a worker makes only when an
assignment missed it ran 31 times in a 2-minute run, so the plan made at its 16th call (the tables nearly empty)
served the run's last minute, and one claim at 2,000 events/s then took 0.6-1.3 s (a sequential scan of the
deliveries, then the events walked once per delivery) while the worker's backlog grew to 6 s. So the statement is
also planned anew each time the time since its first call doubles, from `FIRST_REPLAN_S`: tables that grow with
time are then planned from at least half their rows too, whatever this connection's share of the work.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# The time from a statement's first call on a connection to its first plan by time; then each time that doubles.
FIRST_REPLAN_S = 10.0


class PlanAge:
    """When plans made since a first call are due to be made again: each time the time since that call doubles,
    from `FIRST_REPLAN_S`."""

    __slots__ = ("_again_after", "_clock", "_started")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock, self._started, self._again_after = clock, clock(), FIRST_REPLAN_S

    def due(self) -> bool:
        """Whether plans are due again now; if so, the next time is set (twice the time since the first call)."""
        elapsed = self._clock() - self._started
        if elapsed < self._again_after:
            return False
        self._again_after = max(elapsed * 2, FIRST_REPLAN_S)
        return True


class Replanned:
    """The statement last sent on one connection: its SQL as sent now, and its count there (calls, or rows) and the
    age of its plans (`PlanAge`)."""

    __slots__ = ("_again_at", "_age", "_clock", "_count", "_first", "_sent", "_sql")

    def __init__(self, first: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._first, self._clock = first, clock
        self._sql = self._sent = ""
        self._count, self._again_at = 0, first
        self._age = PlanAge(clock)

    def sql(self, sql: str, count: int = 1) -> str:
        """`sql` as to be sent now for `count` more (calls, or rows): marked anew when its count reaches twice that
        at its last plan (the first count given at creation, at first), or its plans are due by age (`PlanAge`);
        another statement than the last starts both again."""
        if sql != self._sql:
            self._sql = self._sent = sql
            self._count, self._again_at = 0, self._first
            self._age = PlanAge(self._clock)
        if self._age.due() or self._count >= self._again_at:
            self._sent = f"{sql} /* planned anew at {self._count} */"
            self._again_at = max(self._count * 2, self._first)
        self._count += count
        return self._sent
