"""A statement prepared anew on its connection each time its calls there double, for a plan of the tables as they are.

PostgreSQL makes a prepared statement's generic plan from the tables' sizes when it makes it, and keeps it. Made in
a young partition's first calls (a fresh database, or a day's partition at midnight) it scans that partition whole
ever after, until autovacuum next analyzes it: the announced claim took 30-47 ms by the end of a 10 s run, the
record of attempts 150-450 ms at 2,000 events/s (a sequential scan of every delivery of the day per record). Marking
the SQL anew (a comment) makes asyncpg prepare it, and PostgreSQL plan it, again: from `REPLAN_FROM` calls on, each
time they double, so that at a steady rate a plan is made from at least half the rows it meets, and a connection
plans anew ~16 times in a million calls (each leaving a statement in asyncpg's cache, which drops the least
recently used).
"""

from __future__ import annotations

REPLAN_FROM = 16


class Replanned:
    """The statement last sent on one connection: its SQL as sent now, and its calls there."""

    __slots__ = ("_again_at", "_calls", "_sent", "_sql")

    def __init__(self) -> None:
        self._sql = self._sent = ""
        self._calls, self._again_at = 0, REPLAN_FROM

    def sql(self, sql: str) -> str:
        """`sql` as to be sent now: marked anew when its calls reach twice those at its last plan; another statement
        than the last starts the count again."""
        if sql != self._sql:
            self._sql = self._sent = sql
            self._calls, self._again_at = 0, REPLAN_FROM
        if self._calls >= self._again_at:
            self._sent, self._again_at = f"{sql} /* planned anew at {self._calls} */", self._calls * 2
        self._calls += 1
        return self._sent
