"""A statement prepared anew on its connection each time its work there doubles, for a plan of the tables as they are.

PostgreSQL makes a prepared statement's generic plan from the tables' sizes when it makes it, and keeps it. Made in
a young partition's first calls (a fresh database, or a day's partition at midnight) it scans that partition whole
ever after, until autovacuum next analyzes it: the announced claim took 30-47 ms by the end of a 10 s run, the
record of attempts 150-450 ms at 2,000 events/s (a sequential scan of every delivery of the day per record). Marking
the SQL anew (a comment) makes asyncpg prepare it, and PostgreSQL plan it, again, each time the statement's calls
(or the rows it wrote) on the connection double from a first count: at a steady rate a plan is made from at least
half the rows it meets, and a connection plans anew ~16 times in a million calls (each leaving a statement in
asyncpg's cache, which drops the least recently used).
"""

from __future__ import annotations


class Replanned:
    """The statement last sent on one connection: its SQL as sent now, and its count there (calls, or rows)."""

    __slots__ = ("_again_at", "_count", "_first", "_sent", "_sql")

    def __init__(self, first: int) -> None:
        self._first = first
        self._sql = self._sent = ""
        self._count, self._again_at = 0, first

    def sql(self, sql: str, count: int = 1) -> str:
        """`sql` as to be sent now for `count` more (calls, or rows): marked anew when its count reaches twice that
        at its last plan (the first count given at creation, at first); another statement than the last starts the
        count again."""
        if sql != self._sql:
            self._sql = self._sent = sql
            self._count, self._again_at = 0, self._first
        if self._count >= self._again_at:
            self._sent, self._again_at = f"{sql} /* planned anew at {self._count} */", self._count * 2
        self._count += count
        return self._sent
