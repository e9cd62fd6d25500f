"""Marked dialect difference: PostgreSQL's history tables partitioned by day, created ahead and dropped whole.

events, deliveries and attempts are partitioned by range of id (migration 0009). Ids are time-ordered, so a
day's partition holds the ids from the first possible id of that day (`ids.first_id_at`) to that of the next:
the primary keys stay `(id)`, and lookups by id, and windows bounded by an id, prune to the partitions they need.
Besides the days there are a historic partition (everything before migration 0009) and a default one.

Each expiry run creates the partitions of today and `DAYS_AHEAD` days on, and drops every partition whose ids
all lie before the delivered cutoff. Rows of it that must stay (item 4 of issue 22: pending deliveries, failed
ones inside the resend window, the attempts and events they need, events a Kafka stream has still to read) are
copied back first, in the same transaction: the partition is detached, so its range has no partition and they
land in the default one, where row expiry removes them when their time comes. Detaching takes an ACCESS
EXCLUSIVE lock on the parent table for the copy of those few rows; with `lock_timeout` it gives way to queries
already running, and the next run tries again.

A day whose partition could not be created in time (the service was stopped for longer than DAYS_AHEAD days)
has its rows in the default partition; its partition is then never created, and row expiry removes them.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    CompoundSelect,
    Select,
    String,
    Table,
    TableClause,
    and_,
    any_,
    bindparam,
    column,
    func,
    insert,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.ids import first_id_at
from chargewire.models import DeliveryStatus
from chargewire.store.expiry_rules import Cutoffs, read_by_streams
from chargewire.store.tables import attempts, deliveries, events

if TYPE_CHECKING:
    from chargewire.store.database import Database

logger = logging.getLogger(__name__)

DAYS_AHEAD = 7
# Table -> the prefix of its ids. Deliveries go first: which attempts and events stay depends on them.
PARTITIONED = {"deliveries": "dlv", "attempts": "att", "events": "evt"}
_PARENTS = {"deliveries": deliveries, "attempts": attempts, "events": events}
PARTITION_NAME = re.compile(r"^(events|deliveries|attempts)_(p\d{8}|history|default)$")
_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '2s'"
_LOCK_NOT_AVAILABLE = "55P03"
_OBJECT_IN_USE = "55006"
_CHECK_VIOLATION = "23514"  # the default partition already holds rows of the day's range
_OVERLAP = "42P17"  # the historic partition covers the day (the day migration 0009 ran)
# One step of work on a connection that holds the DDL's locks; returns the rows it copied.
_Step = Callable[[AsyncConnection], Awaitable[int]]
_LOWER_BOUND = re.compile(r"FROM \('([^']+)'\)")
_UPPER_BOUND = re.compile(r"TO \('([^']+)'\)")
_PARTITIONS = text(
    """
    SELECT child.relname, pg_get_expr(child.relpartbound, child.oid)
    FROM pg_inherits link
    JOIN pg_class child ON child.oid = link.inhrelid
    JOIN pg_class parent ON parent.oid = link.inhparent
    WHERE parent.relname = :parent AND parent.relnamespace = current_schema()::regnamespace
    """
)


# The same, for asyncpg, of several parents at once: (parent, partition, bounds) rows.
PARTITION_BOUNDS = """
    SELECT parent.relname, child.relname, pg_get_expr(child.relpartbound, child.oid)
    FROM pg_inherits link
    JOIN pg_class child ON child.oid = link.inhrelid
    JOIN pg_class parent ON parent.oid = link.inhparent
    WHERE parent.relname = ANY($1::text[]) AND parent.relnamespace = current_schema()::regnamespace
"""


# A partition's range of ids: (name, lower bound, upper bound); "" for MINVALUE below, None for MAXVALUE above.
PartitionRange = tuple[str, str, str | None]


def partition_ranges(partitions: Sequence[tuple[str, str]]) -> list[PartitionRange]:
    """The ranges of `partitions` (name, bounds as PostgreSQL writes them); the default partition has none."""
    ranges: list[PartitionRange] = []
    for name, bound in partitions:
        if bound.startswith("FOR VALUES FROM"):
            lower, upper = _LOWER_BOUND.search(bound), _UPPER_BOUND.search(bound)
            ranges.append((name, "" if lower is None else lower.group(1), None if upper is None else upper.group(1)))
    return ranges


def partition_holding(ranges: Sequence[PartitionRange], first: str, last: str) -> str | None:
    """The partition whose range holds every id from `first` to `last`; None when none does (they span two, or
    lie in the default partition's part)."""
    for name, lower, upper in ranges:
        if lower <= first and (upper is None or last < upper):
            return name
    return None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def day_partition_name(table_name: str, day: datetime) -> str:
    """The name of `table_name`'s partition for the UTC day that `day` falls in."""
    return f"{table_name}_p{day.astimezone(UTC):%Y%m%d}"


def day_partition(table_name: str, day: datetime) -> str:
    """The statement that creates `table_name`'s partition for the UTC day that `day` falls in."""
    start = day.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    prefix = PARTITIONED[table_name]
    lower, upper = first_id_at(prefix, _ms(start)), first_id_at(prefix, _ms(start + timedelta(days=1)))
    return (
        f"CREATE TABLE IF NOT EXISTS {day_partition_name(table_name, start)} PARTITION OF {table_name} "
        f"FOR VALUES FROM ('{lower}') TO ('{upper}')"
    )


def conversion(table_name: str, indexes: dict[str, str], today: datetime) -> list[str]:
    """Statements that make `table_name` partitioned, keeping its rows as the historic partition (migration 0009).

    The rows are checked against the historic range (`VALIDATE`, one scan of the table), so that attaching
    needs no scan of its own.
    """
    # The historic partition ends with today: its rows were made up to now, and until tomorrow new ones join them.
    tomorrow = today.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    boundary = first_id_at(PARTITIONED[table_name], _ms(tomorrow))
    history = f"{table_name}_history"
    return [
        f"ALTER TABLE {table_name} RENAME TO {history}",
        f"ALTER TABLE {history} RENAME CONSTRAINT pk_{table_name} TO pk_{history}",
        *(f"ALTER INDEX {index} RENAME TO {index.replace(table_name, history, 1)}" for index in indexes),
        f"CREATE TABLE {table_name} (LIKE {history} INCLUDING DEFAULTS) PARTITION BY RANGE (id)",
        f"ALTER TABLE {table_name} ADD CONSTRAINT pk_{table_name} PRIMARY KEY (id)",
        *(f"CREATE INDEX {index} ON {table_name} {columns}" for index, columns in indexes.items()),
        f"ALTER TABLE {history} ADD CONSTRAINT {history}_range CHECK (id < '{boundary}') NOT VALID",
        f"ALTER TABLE {history} VALIDATE CONSTRAINT {history}_range",
        f"ALTER TABLE {table_name} ATTACH PARTITION {history} FOR VALUES FROM (MINVALUE) TO ('{boundary}')",
        f"ALTER TABLE {history} DROP CONSTRAINT {history}_range",
        f"CREATE TABLE {table_name}_default PARTITION OF {table_name} DEFAULT",
        *(day_partition(table_name, tomorrow + timedelta(days=offset)) for offset in range(DAYS_AHEAD)),
    ]


def partition_table(parent: Table, name: str) -> TableClause:
    """A partition of `parent`, with its columns and their types."""
    return table(name, *(column(each.name, each.type) for each in parent.columns))


def _sqlstate(error: DBAPIError) -> str | None:
    """PostgreSQL's error code, as the driver adapter gives it."""
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return None if code is None else str(code)


class Partitions:
    """Creates the day partitions ahead and drops the expired ones of one PostgreSQL database."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def prepare(self, now: datetime) -> None:
        """Make sure today's partitions and those of the next DAYS_AHEAD days exist (creating one locks its
        parent, so only the missing ones are created)."""
        for parent in PARTITIONED:
            existing = {name for name, _bound in await self._partitions(parent)}
            for day in (now + timedelta(days=offset) for offset in range(DAYS_AHEAD + 1)):
                if day_partition_name(parent, day) not in existing:
                    await self._try(parent, [day_partition(parent, day)])

    async def drop_expired(self, cutoffs: Cutoffs, removed: Counter[str]) -> None:
        """Drop every partition older than the delivered cutoff, its rows that must stay copied back first."""
        for parent, prefix in PARTITIONED.items():
            upto = first_id_at(prefix, _ms(cutoffs.delivered_before))
            for name, bound in await self._expired(parent, upto):
                await self._drop(parent, name, bound, cutoffs, removed)

    async def _expired(self, parent: str, upto: str) -> list[tuple[str, str]]:
        """The partitions of `parent` (name, bounds) whose every id sorts before `upto`, oldest first."""
        expired = []
        for name, bound in await self._partitions(parent):
            upper = _UPPER_BOUND.search(bound)
            if upper is not None and upper.group(1) <= upto:
                expired.append((name, bound))
        return sorted(expired)

    async def _partitions(self, parent: str) -> list[tuple[str, str]]:
        """Each partition of `parent` with its bounds as PostgreSQL writes them."""
        async with self._database.reading() as connection:
            rows = (await connection.execute(_PARTITIONS, {"parent": parent})).all()
        return [(str(name), str(bound or "")) for name, bound in rows]

    async def _drop(self, parent: str, name: str, bound: str, cutoffs: Cutoffs, removed: Counter[str]) -> None:
        """Detach `name`, copy its rows that must stay back into `parent` (the default partition), drop it."""
        parent_table = _PARENTS[parent]
        partition = partition_table(parent_table, name)
        async with self._database.reading() as connection:
            # Nothing is written into a past day's range, so this count, taken before the lock, stays right.
            rows = int((await connection.execute(select(func.count()).select_from(partition))).scalar_one())
        kept = await self._survivors(parent, partition, bound, cutoffs)
        names = [each.name for each in parent_table.columns]

        async def detach_copy_drop(connection: AsyncConnection) -> int:
            await connection.execute(text(f"ALTER TABLE {parent} DETACH PARTITION {name}"))
            copied = (
                0
                if kept is None
                else (await connection.execute(insert(parent_table).from_select(names, kept))).rowcount
            )
            await connection.execute(text(f"DROP TABLE {name}"))
            return int(copied)

        copied = await self._try(parent, [], detach_copy_drop)
        if copied is not None:
            removed[parent] += rows - copied
            logger.info("dropped partition %s: %d rows, %d kept", name, rows, copied)

    async def _survivors(
        self, parent: str, partition: TableClause, bound: str, cutoffs: Cutoffs
    ) -> Select[tuple[Any, ...]] | CompoundSelect[tuple[Any, ...]] | None:
        """The rows of an expired partition that must stay (item 4), found by index while the parent is locked.

        The rules are those of `expiry_rules`, written for a whole day that lies before the delivered cutoff:
        - deliveries: pending, or failed inside the resend window; an index scan of the partition's (status,
          next_attempt_at) index, never a scan of the day. A delivered one never stays: its id, made with its
          created_at, lies before the cutoff.
        - attempts: those whose delivery still exists. Deliveries made before the cutoff are, once their
          partitions are dropped, only the few that stay (in the default partition); attempts of later ones
          (another host's clock behind) stay unchecked.
        - events: chosen before the lock, with a scan of the partition that blocks nobody, as the events that
          must stay can only become fewer: streams only move forward, and no delivery is made for an old
          event but by a stream that still needs it.
        """
        if parent == "deliveries":
            return select(partition).where(
                or_(
                    partition.c.status == DeliveryStatus.PENDING.value,
                    and_(
                        partition.c.status == DeliveryStatus.FAILED.value,
                        partition.c.created_at >= cutoffs.failed_before,
                    ),
                )
            )
        if parent == "attempts":
            upto = first_id_at(PARTITIONED["deliveries"], _ms(cutoffs.delivered_before))
            older = select(deliveries.c.id).where(deliveries.c.id < upto).subquery()
            of_kept = select(partition).join(older, partition.c.delivery_id == older.c.id)
            return of_kept.union_all(select(partition).where(partition.c.delivery_id >= upto))
        needed = await self._needed_events(partition, bound, cutoffs)
        if not needed:
            return None
        return select(partition).where(partition.c.id == any_(bindparam("needed", needed, type_=ARRAY(String))))

    async def _needed_events(self, partition: TableClause, bound: str, cutoffs: Cutoffs) -> list[str]:
        """The ids of an expired events partition's events that a delivery or a Kafka stream still needs."""
        lower, upper = _LOWER_BOUND.search(bound), _UPPER_BOUND.search(bound)
        referenced = select(deliveries.c.event_id)
        if lower is not None:
            referenced = referenced.where(deliveries.c.event_id >= lower.group(1))
        if upper is not None:
            referenced = referenced.where(deliveries.c.event_id < upper.group(1))
        needed = select(partition.c.id).where(
            or_(
                partition.c.received_at >= cutoffs.delivered_before,
                partition.c.id.in_(referenced),
                read_by_streams(partition, cutoffs.stretches),
            )
        )
        async with self._database.reading() as connection:
            return [str(event_id) for event_id in (await connection.scalars(needed)).all()]

    async def _try(self, parent: str, statements: list[str], then: _Step | None = None) -> int | None:
        """Run DDL on `parent` under a lock timeout; None when it gave way to a lock, or the default partition's
        rows, or found the day covered already (the next run tries again)."""
        try:
            async with self._database.transaction() as connection:
                await connection.execute(text(_LOCK_TIMEOUT))
                for statement in statements:
                    await connection.execute(text(statement))
                return 0 if then is None else await then(connection)
        except DBAPIError as error:
            code = _sqlstate(error)
            if code == _OVERLAP:
                return None  # that day's rows have a partition already
            if code not in (_LOCK_NOT_AVAILABLE, _OBJECT_IN_USE, _CHECK_VIOLATION):
                raise
            logger.warning("partition maintenance of %s gave way, to try again next run: %s", parent, error.orig)
            return None
