"""Marked dialect difference: on PostgreSQL a publish made from guessed subscribers is one statement, one round trip.

A publish's transaction was six round trips (BEGIN, the numbering, the subscribers, two INSERTs, COMMIT), each
~0.5-0.8 ms of latency and ~0.1-0.2 ms of the API's CPU on a small VM. When the fan-out's deliveries could be made
beforehand from a guess of the subscribers (those the last publish of the same names read), the whole publish is
one statement sent outside a transaction block, which is its own transaction:

    WITH subscribers AS (the publish's read of its enabled webhook subscribers),
         numbered AS (the numbering's UPDATE ... WHERE they are the guess, as a set, RETURNING the last number),
         the events' INSERT ... numbered from it, the deliveries' INSERT ... only if `numbered` has its row
    SELECT the last number taken (NULL: the guess failed and nothing was written),
           and, if the publish wakes workers, pg_notify(the wake-up channel, its payload) when the numbering took

Every part reads one snapshot, taken when the statement starts. The numbering is the current path's UPDATE of the
sequence's one row, so its row lock is held until the statement's commit, and publishes number and commit in the
same order (`store.event_log`): a writer that waits for the lock numbers after the one it waited for. A refused
row (a NUL in text, a value too long for its column, a broken constraint) fails the whole statement, numbering
included, as it failed the transaction. The SQL is SQLAlchemy Core compiled once per shape, sent straight on the
asyncpg connection (its own prepared-statement cache), past SQLAlchemy's cursor and its greenlet switch, on a
connection the publisher keeps out of the pool (`postgresql_driver.KeptConnection`): no checkout per publish.

The wake-up of other processes' workers (`postgresql_wakeups`) rides in the same statement: PostgreSQL delivers a
pg_notify at the commit of its transaction, and never for one that did not commit, so it is sent exactly when the
publish is, and a worker that hears it sees the deliveries it names. Sent after the commit on a connection of its
own, it was a second round trip per publish and a transaction of its own (an xid, a commit record flushed to WAL).
"""

from __future__ import annotations

import functools
from datetime import UTC
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Dialect,
    Select,
    String,
    Table,
    Update,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    select,
    union_all,
)

from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.dialects.base import GuessedPublish
from chargewire.store.dialects.postgresql_announcements import (
    MAX_PAYLOAD_BYTES,
    Assignment,
    assignment_bytes,
    encoded,
    encoded_with_assignments,
)
from chargewire.store.dialects.postgresql_driver import COPY_FROM_ROWS, KeptConnection, unnested
from chargewire.store.dialects.postgresql_wakeups import WAKE_CHANNEL

if TYPE_CHECKING:
    from chargewire.store.database import Database

_GUESS = "guess_"
_EVENT = "event_"
_DELIVERY = "delivery_"
_POSITION = "position"
_WAKE = "wake_payload"


class OneStatementPublisher:
    """Writes a `GuessedPublish` in one statement on a connection of its own, outside any transaction block."""

    # As many as one INSERT of arrays writes more cheaply than COPY.
    max_rows = COPY_FROM_ROWS

    def __init__(self, database: Database) -> None:
        self._engine = database.engine
        self._connection = KeptConnection(database.engine)

    async def write(self, publish: GuessedPublish) -> int | None:
        """Write `publish` if its subscribers are still the guess; the last number taken, or None (nothing written)."""
        statement = _compiled(_shape(publish), publish.wake is not None, self._engine.dialect)
        values = statement.values(publish)
        async with self._connection.driver("publish") as driver:
            last = await driver.fetchval(statement.sql, *values)
        return None if last is None else int(last)


# What the statement's SQL depends on: the subscribers' read, the numbering, and the tables and columns written.
_Shape = tuple[Select[Any], Update, Table, tuple[str, ...], str, Table, tuple[str, ...]]


def _shape(publish: GuessedPublish) -> _Shape:
    subscribers, numbering = publish.subscribers.statement, publish.numbering.statement
    if not isinstance(subscribers, Select) or not isinstance(numbering, Update):
        raise TypeError("a guessed publish reads its subscribers with a SELECT and numbers with an UPDATE")
    events, deliveries = publish.events, publish.deliveries
    return (
        subscribers,
        numbering,
        events.table,
        events.columns,
        publish.number_into,
        deliveries.table,
        deliveries.columns,
    )


class _Compiled:
    """A shape's statement as asyncpg takes it: its SQL, and how a publish's values become its parameters in order."""

    def __init__(self, shape: _Shape, wakes: bool, dialect: Dialect) -> None:
        compiled = _statement(*shape, wakes=wakes).compile(dialect=dialect)
        self.sql = compiled.string
        self._names = tuple(compiled.positiontup or ())
        # Values the statement carries itself (a literal in a read's WHERE), as construct_params gives them.
        self._constants = compiled.construct_params(_check=False)
        # The guess is compared with what the read returns: each of its columns as the driver takes that column.
        self._guess_processors = [
            (f"{_GUESS}{column.name}", index, column.type.dialect_impl(dialect).bind_processor(dialect))
            for index, column in enumerate(shape[0].selected_columns)
        ]

    def values(self, publish: GuessedPublish) -> list[Any]:
        """The parameters of `publish` in the statement's order: the reads' own, the guess as one array per column,
        the rows' columns."""
        values = {**self._constants, **publish.subscribers.parameters, **publish.numbering.parameters}
        for name, index, process in self._guess_processors:
            guessed = [row[index] for row in publish.guess]
            values[name] = guessed if process is None else [process(value) for value in guessed]
        for prefix, rows in ((_EVENT, publish.events), (_DELIVERY, publish.deliveries)):
            values.update({prefix + name: list(column) for name, column in zip(rows.columns, rows.values, strict=True)})
        if publish.wake is not None:
            values[_WAKE] = encoded(publish.wake) if publish.assigned is None else _assigning(publish, values)
        return [values[name] for name in self._names]


def _assigning(publish: GuessedPublish, values: dict[str, Any]) -> str:
    """The wake-up of a publish whose deliveries of `publish.assigned` go to a worker of another process: it carries
    them whole; if that would not fit in a NOTIFY, they are written due instead (in `values`) and named as due."""
    lease, wake = publish.assigned, list(publish.wake or ())
    assert lease is not None
    assignment = Assignment(lease.worker_id, lease.until, _leased_deliveries(publish, lease.delivery_ids))
    if assignment_bytes(assignment) + len(encoded(wake)) < MAX_PAYLOAD_BYTES:
        return encoded_with_assignments(encoded(wake) if wake else None, [assignment])
    owners, due_at = values[_DELIVERY + "lease_owner"], values[_DELIVERY + "next_attempt_at"]
    now = values[_EVENT + "received_at"][0]
    for index, owner in enumerate(owners):
        if owner is not None:
            owners[index], due_at[index] = None, now
    return encoded([*wake, *((d.id, d.subscription_id) for d in assignment.deliveries)])


def _leased_deliveries(publish: GuessedPublish, leased: frozenset[str]) -> list[ClaimedDelivery]:
    """The deliveries of `publish` in `leased`, as their worker sends them, with their events' bytes."""
    events = dict(zip(publish.events.columns, publish.events.values, strict=True))
    by_event = {
        event_id: (payload, entity_id, received_at.replace(tzinfo=UTC))
        for event_id, payload, entity_id, received_at in zip(
            events["id"], events["payload"], events["entity_id"], events["received_at"], strict=True
        )
    }
    rows = dict(zip(publish.deliveries.columns, publish.deliveries.values, strict=True))
    return [
        ClaimedDelivery(delivery_id, event_id, subscription_id, name, 0, None, *by_event[event_id])
        for delivery_id, event_id, subscription_id, name in zip(
            rows["id"], rows["event_id"], rows["subscription_id"], rows["event_name"], strict=True
        )
        if delivery_id in leased
    ]


@functools.lru_cache(maxsize=8)
def _compiled(shape: _Shape, wakes: bool, dialect: Dialect) -> _Compiled:
    """The statement of `shape` (sending the wake-up if `wakes`) compiled for asyncpg, once."""
    return _Compiled(shape, wakes, dialect)


def _statement(
    subscribers: Select[Any],
    numbering: Update,
    event_table: Table,
    event_columns: tuple[str, ...],
    number_into: str,
    delivery_table: Table,
    delivery_columns: tuple[str, ...],
    *,
    wakes: bool,
) -> Select[Any]:
    """The publish as one statement (see the module): it returns the last number taken, or NULL; if `wakes`, it
    also sends the wake-up when it took one."""
    read = subscribers.order_by(None).cte("subscribers")
    guess = unnested(read, tuple(read.c.keys()), bounded=False, prefix=_GUESS)
    seen, expected = select(*read.c), select(*guess.c)
    # The same rows as a set: none read that was not guessed, none guessed that was not read.
    differs = union_all(seen.except_(expected), expected.except_(seen)).exists()
    numbered = numbering.where(~differs).cte("numbered")
    # Read as a scalar, not joined: the planner, knowing nothing of the one row, would multiply the rows by its guess
    # of the UPDATE's, and the plan made for any values (generic, planned once) would look too costly to choose.
    last = select(numbered.c[0]).scalar_subquery()
    taken = select(numbered.c[0]).exists()

    rows = unnested(event_table, event_columns, bounded=False, prefix=_EVENT, ordinality=_POSITION)
    numbered_rows = select(*[rows.c[name] for name in event_columns], last - func.count().over() + rows.c[_POSITION])
    new_events = insert(event_table).from_select([*event_columns, number_into], numbered_rows.where(taken))
    made = unnested(delivery_table, delivery_columns, bounded=False, prefix=_DELIVERY)
    new_deliveries = insert(delivery_table).from_select(
        delivery_columns, select(*[made.c[name] for name in delivery_columns]).where(taken)
    )
    columns: list[Any] = [last]
    if wakes:
        columns.append(
            case((taken, func.pg_notify(literal_column(f"'{WAKE_CHANNEL}'"), bindparam(_WAKE, type_=String()))))
        )
    return select(*columns).add_cte(new_events.cte("new_events"), new_deliveries.cte("new_deliveries"))
