"""Marked dialect difference: a worker's announced claim on PostgreSQL, sent on asyncpg past SQLAlchemy's cursor.

The statement is `delivery_claims.claim_listed`'s (the lease in a WITH, joined to its events' payloads within a
window of ids), compiled once and sent on the asyncpg connection itself, which prepares it once per connection.
Through SQLAlchemy's AsyncConnection and adapter it was a fifth of a worker's samples at 200 events/s (the
adapter's prepare-and-execute 15%).

Announced deliveries were made moments ago, so nearly always all within one partition of deliveries (a day's,
or the historic one on the day the partitions were made, `postgresql_partitions`): then the statement names that
partition, and the partition of events their events were made in, instead of the partitioned tables. On the
tables PostgreSQL planned it afresh on every call (a generic plan of a partitioned table locks every partition,
and cost more), ~0.5 ms of its CPU per claim at 200 events/s; on partitions, a connection keeps one generic plan.
It leases the same rows under the same conditions: rows of those ids can be in that partition only. An event in
an earlier partition (made just before midnight) is left out by the join, and its payload read apart, as one
before its window. Ids spanning two partitions, or in the default partition's part, are claimed on the tables.
A generic plan is made from the tables' sizes when it is made, and kept: each connection prepares the claim on a
partition, and that on the tables, again, for a new plan, each time its calls on it double (`postgresql_replans`).
Each connection reads the partitions' bounds when it first claims, and again when ids fall in none it knows (at
most once a minute) or a claim on a partition failed; when that partition is gone (dropped by expiry, once its
day was long past, perhaps with rows copied back into the default partition) it claims again at once.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import asyncpg
from sqlalchemy import Column, Dialect, Select, Table, TableClause
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import visitors

from chargewire.ids import first_id_at, made_at_ms
from chargewire.store.delivery_claims import (
    EVENT_PREFIX,
    ClaimRequest,
    announced_events_window,
    claimed_deliveries,
    lease_values,
    missing_payloads,
    payloads_statement,
    with_payloads_read,
    with_payloads_within,
)
from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.delivery_writes import claim_announced_statement
from chargewire.store.dialects import StoreDialect
from chargewire.store.dialects.postgresql_compiled import DriverStatement, compiled_for_driver
from chargewire.store.dialects.postgresql_driver import KeptConnection
from chargewire.store.dialects.postgresql_partitions import (
    PARTITION_BOUNDS,
    PartitionRange,
    partition_holding,
    partition_ranges,
    partition_table,
)
from chargewire.store.dialects.postgresql_replans import Replanned
from chargewire.store.tables import deliveries, events

WHAT = "the announced claim"
# How long a connection claims on the tables ids that fall in no partition it knows, before reading them again.
_RECHECK_S = 60.0
_PARTITIONED = (deliveries, events)
# The claim is planned anew at this many calls on a connection, and each time they double (`postgresql_replans`).
_REPLAN_FROM = 16


class ClaimConnection:
    """The connection a store keeps for its announced claims (`KeptConnection`), and what the claim knows on it
    (`_Known`): forgotten with the connection, when that is lost and another made in its place."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._kept = KeptConnection(engine)
        self._known: _Known | None = None

    async def claim_listed(
        self, dialects: tuple[StoreDialect, Dialect], delivery_ids: Sequence[str], request: ClaimRequest
    ) -> list[ClaimedDelivery]:
        """`delivery_claims.claim_listed`, outside a transaction block: one statement, one round trip (a second
        only for an event older than its window, or for a connection's first look at the partitions)."""
        async with self._kept.driver(WHAT) as driver:
            known = self._known_on(driver)
            try:
                return await _claim_listed(driver, known, dialects, delivery_ids, request)
            except asyncpg.UndefinedTableError:
                # A partition it named was dropped (expired) since the bounds were read, which are forgotten now: the
                # statement failed whole, so claiming again, on the partitions there are, leases the same rows.
                return await _claim_listed(driver, known, dialects, delivery_ids, request)

    def _known_on(self, driver: asyncpg.Connection) -> _Known:
        """What is known on `driver`: the kept connection's, or, on a pooled one (the kept one busy), a look of its
        own that is not kept."""
        known = self._known
        if known is not None and known.on(driver):
            return known
        if known is not None and known.open():
            return _Known(driver)
        self._known = _Known(driver)
        return self._known


class _Known:
    """What a connection knows: when it read the partitions' bounds and each partitioned table's (name, bounds);
    and the partition-named claim last sent on it and the claim on the tables, each as sent now
    (`postgresql_replans.Replanned`)."""

    __slots__ = ("_connection", "bounds", "on_partition", "on_tables")

    def __init__(self, driver: asyncpg.Connection) -> None:
        self._connection = weakref.ref(driver)
        self.bounds: tuple[float, dict[str, list[PartitionRange]]] | None = None
        self.on_partition = Replanned(_REPLAN_FROM)
        self.on_tables = Replanned(_REPLAN_FROM)

    def on(self, driver: asyncpg.Connection) -> bool:
        """Whether this is what `driver` knows."""
        return self._connection() is driver

    def open(self) -> bool:
        """Whether its connection is still open."""
        connection = self._connection()
        return connection is not None and not connection.is_closed()

    def forget(self) -> None:
        """Forget the bounds and plans: read the partitions again before naming one."""
        self.bounds = None
        self.on_partition = Replanned(_REPLAN_FROM)


async def _claim_listed(
    driver: asyncpg.Connection,
    known: _Known,
    dialects: tuple[StoreDialect, Dialect],
    delivery_ids: Sequence[str],
    request: ClaimRequest,
) -> list[ClaimedDelivery]:
    partitions = await _partitions_holding(driver, known, delivery_ids)
    lease, payloads = _compiled(*dialects, partitions)
    values = lease_values(dialects[0], delivery_ids, request)
    values["events_from"], values["events_to"] = announced_events_window(delivery_ids)
    if partitions is None:
        # Its generic plan too, made in a fresh database's first claims, read the events whole into a hash on every
        # claim (83 of 115 ms at the end of a 10 s run at 2,000 events/s).
        leased = await _replanned(known.on_tables, lease).fetch(driver, values)
    else:
        try:
            leased = await _replanned(known.on_partition, lease).fetch(driver, values)
        except BaseException:
            # Perhaps the partition is gone (expired and dropped): read the bounds again before naming one.
            known.forget()
            raise
    rows = sorted(leased)
    missing = missing_payloads(rows)
    if missing:
        read = await payloads.fetch(driver, {"ids": list(missing)})
        rows = with_payloads_read(rows, {row[0]: row[1:] for row in read})
    return claimed_deliveries(rows)


def _replanned(replanned: Replanned, lease: DriverStatement) -> DriverStatement:
    """`lease` as sent on the connection now (`postgresql_replans`); another partition's claim starts anew."""
    sql = replanned.sql(lease.sql)
    return lease if sql is lease.sql else replace(lease, sql=sql)


async def _partitions_holding(
    driver: asyncpg.Connection, known: _Known, delivery_ids: Sequence[str]
) -> tuple[str, str] | None:
    """The partition of deliveries that holds all of `delivery_ids`, and that of events made when they were; None
    when either is not one partition."""
    first, last = min(delivery_ids), max(delivery_ids)
    made = (first_id_at(EVENT_PREFIX, made_at_ms(first)), first_id_at(EVENT_PREFIX, made_at_ms(last) + 1))
    bounds = known.bounds
    for attempt in range(2):
        if bounds is not None:
            held = partition_holding(bounds[1].get(deliveries.name, []), first, last)
            of_events = partition_holding(bounds[1].get(events.name, []), *made)
            if held is not None and of_events is not None:
                return held, of_events
        if attempt or (bounds is not None and time.monotonic() - bounds[0] < _RECHECK_S):
            return None
        rows = await driver.fetch(PARTITION_BOUNDS, [table.name for table in _PARTITIONED])
        found: dict[str, list[tuple[str, str]]] = {}
        for parent, name, bound in rows:
            found.setdefault(parent, []).append((name, bound or ""))
        bounds = known.bounds = (time.monotonic(), {parent: partition_ranges(of) for parent, of in found.items()})
    return None


@functools.lru_cache(maxsize=8)
def _compiled(
    dialect: StoreDialect, driver_dialect: Dialect, partitions: tuple[str, str] | None
) -> tuple[DriverStatement, DriverStatement]:
    """The lease with its payloads (on `partitions` of deliveries and events, or on the tables when None), and the
    read of payloads it left out, for `driver_dialect`."""
    lease = with_payloads_within(claim_announced_statement(dialect))
    if partitions is not None:
        named = {table: partition_table(table, name) for table, name in zip(_PARTITIONED, partitions, strict=True)}
        lease = _on_partitions(lease, named)
    return compiled_for_driver(lease, driver_dialect), compiled_for_driver(payloads_statement(dialect), driver_dialect)


def _on_partitions(statement: Select[Any], partitions: Mapping[Table, TableClause]) -> Select[Any]:
    """`statement` with each table of `partitions` (and its columns) replaced by the partition given."""

    def replaced(element: Any, **_kw: Any) -> Any:
        if isinstance(element, Table) and element in partitions:
            return partitions[element]
        if isinstance(element, Column) and element.table in partitions:
            return partitions[element.table].c[element.name]
        return None

    no_options: dict[str, Any] = {}
    retargeted = visitors.replacement_traverse(statement, no_options, replaced)
    if not isinstance(retargeted, Select):
        raise TypeError(f"not a SELECT: {retargeted}")
    return retargeted
