"""Every write to the attempt log, `attempts` and `attempt_batches`, each named for its intent.

A worker's attempts are appended with their deliveries' new state; a Kafka stream's batch writes one
`attempt_batches` row for the first attempts of the records it delivered and an attempts row for each record
that failed, as writes its caller adds to the batch's guarded writes, so they commit with the stream's move
(decision 0003). Expiry removes a delivery's attempts with it, attempts whose delivery is gone, and batches
none of whose deliveries is left. Each function takes its caller's connection, so the caller keeps its
transaction. `tests/unit/store/test_table_write_owners.py` keeps every such statement in this module.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ColumnElement, Dialect, FromClause, Insert, cast, delete, exists, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from chargewire.store.attempt_text import (
    MAX_ERROR_CLASS_CHARS,
    MAX_ERROR_MESSAGE_CHARS,
    MAX_RESPONSE_BODY_CHARS,
    storable_headers,
    storable_optional,
)
from chargewire.store.bulk_insert import driver_value
from chargewire.store.delivery_records import AttemptRecord
from chargewire.store.dialects.writes import RowInsert, Statement
from chargewire.store.expiry_rules import attempt_orphaned
from chargewire.store.tables import attempt_batches, attempts, deliveries

ATTEMPT_COLUMNS = (
    "id",
    "delivery_id",
    "number",
    "started_at",
    "duration_ms",
    "outcome",
    "status_code",
    "error_class",
    "error_message",
    "request_headers",
    "response_headers",
    "response_body",
)
# Built once: a worker records a batch with it every few milliseconds.
_INSERT_ATTEMPT_BATCH = insert(attempt_batches)
# A batch is spent once none of the deliveries it delivered is left.
_BATCH_SPENT = ~exists().where(
    deliveries.c.id.between(attempt_batches.c.first_delivery_id, attempt_batches.c.last_delivery_id),
    deliveries.c.attempt_batch_id == attempt_batches.c.id,
)


def insert_for_records(dialect: Dialect, records: Sequence[AttemptRecord]) -> RowInsert:
    """The insert of these records' attempts into the attempt log, for their transaction's last writes (a worker's
    record, a stream batch's failures)."""
    return RowInsert(attempts, ATTEMPT_COLUMNS, attempt_rows(dialect, records))


def insert_from(rows: FromClause) -> Insert:
    """The insert of the attempts `rows` holds (`ATTEMPT_COLUMNS`, as `attempt_rows` makes them, JSON as its text),
    for a statement that writes them with their deliveries' new state (PostgreSQL's one-statement record)."""
    values = [_as_stored(rows.c[name], attempts.c[name].type) for name in ATTEMPT_COLUMNS]
    return insert(attempts).from_select(ATTEMPT_COLUMNS, select(*values))


def _as_stored(value: ColumnElement[Any], column_type: TypeEngine[Any]) -> ColumnElement[Any]:
    # JSON comes as the text `attempt_rows` made of it, which the cast keeps as it is.
    return cast(value, column_type) if isinstance(column_type, JSON) else value


def insert_attempt_batch(batch: dict[str, Any]) -> Statement:
    """The insert of a stream batch's `attempt_batches` row (`attempt_batch_row`), for its guarded writes."""
    return Statement(_INSERT_ATTEMPT_BATCH, batch)


async def delete_for_deliveries(connection: AsyncConnection, delivery_ids: Sequence[str]) -> int:
    """Remove the attempts of these (expired) deliveries; returns how many."""
    their_attempts = delete(attempts).where(attempts.c.delivery_id.in_(delivery_ids))
    return int((await connection.execute(their_attempts)).rowcount)


async def delete_orphaned(connection: AsyncConnection, attempt_ids: Sequence[str], before: datetime) -> int:
    """Remove the attempts among these whose delivery is gone, made before `before`; returns how many."""
    orphaned = delete(attempts).where(attempts.c.id.in_(attempt_ids), attempt_orphaned(attempts, before))
    return int((await connection.execute(orphaned)).rowcount)


async def delete_spent_batches(connection: AsyncConnection, batch_ids: Sequence[str]) -> int:
    """Remove the batches among these none of whose deliveries is left; returns how many."""
    spent = delete(attempt_batches).where(attempt_batches.c.id.in_(batch_ids), _BATCH_SPENT)
    return int((await connection.execute(spent)).rowcount)


def attempt_rows(dialect: Dialect, records: Sequence[AttemptRecord]) -> list[tuple[Any, ...]]:
    """The attempts as a `RowInsert` takes them, in `ATTEMPT_COLUMNS` order, made storable (`attempt_text`)."""
    stored_time, stored_json = _stored_forms(dialect)
    # A batch's attempts share their start time: convert each distinct one once.
    times = {at: stored_time(at) for at in {record.attempt.started_at for record in records}}
    return [
        (
            attempt.id,
            attempt.delivery_id,
            attempt.number,
            times[attempt.started_at],
            attempt.duration_ms,
            attempt.outcome,
            attempt.status_code,
            storable_optional(attempt.error_class, MAX_ERROR_CLASS_CHARS),
            storable_optional(attempt.error_message, MAX_ERROR_MESSAGE_CHARS),
            stored_json(attempt.request_headers),
            None if attempt.response_headers is None else stored_json(storable_headers(attempt.response_headers)),
            storable_optional(attempt.response_body, MAX_RESPONSE_BODY_CHARS),
        )
        for attempt in (record.attempt for record in records)
    ]


# Found once per dialect: looking them up cost a record of one attempt more than converting its values.
@functools.lru_cache(maxsize=8)
def _stored_forms(dialect: Dialect) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """What makes a time, and a JSON value, of an attempt what `dialect`'s driver takes."""
    return driver_value(dialect, attempts.c.started_at), driver_value(dialect, attempts.c.request_headers)


def attempt_batch_row(subscription_id: str, delivered: Sequence[AttemptRecord]) -> dict[str, Any] | None:
    """The `attempt_batches` row of the first attempts of the records a batch delivered, if any.

    The records were produced in one call: they share its start and duration, and the batch takes the id of
    its first record's attempt. It keeps the request headers every record carried alike, and each record's
    response headers by delivery id.
    """
    if not delivered:
        return None
    first = delivered[0].attempt
    shared = dict(first.request_headers)
    for record in delivered:
        headers = record.attempt.request_headers
        if shared.items() <= headers.items():
            continue  # the usual case after the second record: one comparison in C, no list
        # The second record drops the per-record headers: the rest compare only what is still shared.
        for name in [name for name, value in shared.items() if headers.get(name) != value]:
            del shared[name]
    delivery_ids = [record.attempt.delivery_id for record in delivered]
    return {
        "id": first.id,
        "subscription_id": subscription_id,
        "started_at": first.started_at,
        "duration_ms": first.duration_ms,
        "records": len(delivered),
        "first_delivery_id": min(delivery_ids),
        "last_delivery_id": max(delivery_ids),
        "request_headers": shared,
        "response_headers": {record.attempt.delivery_id: record.attempt.response_headers or {} for record in delivered},
    }
