"""Marked dialect difference: a worker's record of attempts on PostgreSQL, one statement in one round trip.

The record is the attempts inserted, their deliveries moved on (delivered, rescheduled or failed, each only while
its lease is still the recording worker's) and their subscriptions' health, as on SQLite (`delivery_store`). Here
the writes are data-modifying WITHs of one INSERT, which PostgreSQL runs atomically as its own transaction: sent
outside a transaction block, no BEGIN or COMMIT goes with it. It was BEGIN, an executemany of the failures'
reschedules, the INSERT, the health UPDATEs, the delivered UPDATE and COMMIT: three to five round trips, each
through SQLAlchemy's adapter.

Its values travel as JSON, the records as one list of objects, the subscriptions as lists of ids. The planner
reckons a JSON list at one size whatever it holds, so after its first custom plans a connection keeps one
generic plan; arrays bound instead are reckoned at their length, and their statements were planned afresh on
every call. That plan is made from the tables' sizes when it is made: it is made anew as the attempts recorded on
the connection double (`postgresql_replans`), or, made in a fresh database's or a young partition's first records,
it scanned every delivery of the partition on each record (150-450 ms a record by the end of a 10 s run at 2,000
events/s, most of PostgreSQL's CPU). The SQL is compiled once and sent on the asyncpg connection itself, which
prepares it once per (marked) SQL and connection; its errors are translated as SQLAlchemy's cursor would
(`postgresql_driver.translated`), so a refused record is told apart as before (`refusals`).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from sqlalchemy import JSON, Dialect, Insert, String, Text, bindparam, column, func, select
from sqlalchemy.types import TypeEngine

from chargewire.store.attempt_writes import ATTEMPT_COLUMNS, attempt_rows, insert_from
from chargewire.store.bulk_insert import driver_value
from chargewire.store.delivery_records import AttemptRecord
from chargewire.store.delivery_writes import OUTCOME_COLUMNS, outcome_values, record_outcomes
from chargewire.store.dialects.postgresql_replans import Replanned
from chargewire.store.subscription_health_writes import health_updates_of_lists, healthy_and_failing
from chargewire.store.tables import attempts, subscriptions

_FIELDS = (*ATTEMPT_COLUMNS, *(name for name, _column in OUTCOME_COLUMNS))
WHAT = "the record of attempts in one statement"
# Planned anew once a connection recorded this many attempts, and each time they double (`postgresql_replans`):
# by rows, not calls, as a scan's cost grows with the rows written; at 50 events/s (a record or two a call) a plan
# anew every doubling of calls (~6 in a 10 s run) looked costlier than the small scans it spared (docs/benchmarks.md).
_REPLAN_FROM = 1024
# The record as sent on each connection, forgotten with the connection.
_REPLANNED: weakref.WeakKeyDictionary[asyncpg.Connection, Replanned] = weakref.WeakKeyDictionary()


async def record_in_one_statement(
    driver: asyncpg.Connection, dialect: Dialect, records: Sequence[AttemptRecord]
) -> None:
    """Write `records`' attempts, their deliveries' new state and their subscriptions' health in one statement, on
    `driver` outside a transaction block (its errors `postgresql_driver.translated`)."""
    sql, binds, stored_time = _compiled(dialect)
    healthy, failing = healthy_and_failing(records)
    outcomes = outcome_values(records, stored_time)
    values = {
        "records": _json(
            [
                dict(zip(_FIELDS, (*row, *outcome), strict=True))
                for row, outcome in zip(attempt_rows(dialect, records), outcomes, strict=True)
            ]
        ),
        "healthy": _json(healthy),
        "failing": _json(failing),
        "since": stored_time(records[-1].attempt.started_at),
    }
    replanned = _REPLANNED.get(driver)
    if replanned is None:
        replanned = _REPLANNED[driver] = Replanned(_REPLAN_FROM)
    await driver.execute(replanned.sql(sql, len(records)), *(values.get(name, held) for name, held in binds))


def _json(value: Any) -> str:
    # Text, as SQLAlchemy's codec for json parameters takes it.
    return orjson.dumps(value).decode()


@functools.lru_cache(maxsize=8)
def _compiled(dialect: Dialect) -> tuple[str, tuple[tuple[str, Any], ...], Callable[[datetime], Any]]:
    """The record statement's SQL for `dialect`'s driver, with its parameters in the order it binds them (each name
    with the value it holds, the statement's own constants, which a value given by that name replaces); and what
    makes a time what the driver takes."""
    compiled = _record_statement().compile(dialect=dialect)
    binds = tuple((name, compiled.binds[name].effective_value) for name in compiled.positiontup or ())
    return compiled.string, binds, driver_value(dialect, subscriptions.c.failing_since)


def _record_statement() -> Insert:
    fields = [column(name, _field_type(attempts.c[name].type)) for name in ATTEMPT_COLUMNS]
    fields += [column(name, _field_type(of.type)) for name, of in OUTCOME_COLUMNS]
    unpacked = func.json_to_recordset(bindparam("records", type_=JSON)).table_valued(*fields)
    # Read by the INSERT and by the UPDATE of the deliveries: PostgreSQL unpacks it once.
    recorded = select(unpacked.render_derived(name="unpacked", with_types=True)).cte("recorded")
    healthy_again, failing_since = health_updates_of_lists()
    return (
        insert_from(recorded)
        .add_cte(record_outcomes(recorded).cte("moved"))
        .add_cte(healthy_again.cte("healthy_again"))
        .add_cte(failing_since.cte("failing_since"))
    )


def _field_type(column_type: TypeEngine[Any]) -> TypeEngine[Any]:
    """How a value of a column of `column_type` is read from the records' JSON: text unbounded, so that the column
    refuses a longer one as a bound value would be refused; JSON as its text (`attempt_writes.insert_from`)."""
    if isinstance(column_type, JSON):
        return Text()
    if isinstance(column_type, String):
        return String()
    return column_type
