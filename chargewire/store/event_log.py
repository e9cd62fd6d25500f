"""The numbered event log: numbers taken at publish, its committed end, and what Kafka streams have yet to read.

Numbers come from the one `event_sequence` row, updated by the publishing transaction (on PostgreSQL, perhaps a
publish's one statement, `dialects.postgresql_publish`, its own transaction). On PostgreSQL its row lock is held
until commit, so transactions number and commit in the same order; on SQLite writes are serial.
Either way, a committed end N means every event numbered up to N is committed and readable.

A subscription moving onto or off Kafka fences the log (`fence_publishes`, decision 0011): the rows its stream
leaves behind, or the position its stream starts from, then agree with the subscribers every publish read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, and_, bindparam, func, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.store.dialects.base import Read
from chargewire.store.tables import event_sequence, events, kafka_streams, stream_pauses, subscription_events

# Built once, as it runs in every publishing transaction.
_TAKE_NUMBERS = (
    update(event_sequence)
    .values(last_seq=event_sequence.c.last_seq + bindparam("count", type_=BigInteger))
    .returning(event_sequence.c.last_seq)
)


# A publish made in one statement from guessed subscribers (`dialects.postgresql_publish`) reads them in the snapshot
# its statement began with, and may wait for the row meanwhile: it takes numbers only if no subscription moved onto
# or off Kafka in between (the count as its snapshot read it is the count on the row it updates), else it writes
# nothing and the publish is made again from the subscribers as they are then.
_SEEN = event_sequence.alias("seen")
_TAKE_NUMBERS_UNLESS_MOVED = _TAKE_NUMBERS.where(
    event_sequence.c.channel_moves == select(_SEEN.c.channel_moves).scalar_subquery()
)
_COUNT_A_MOVE = (
    update(event_sequence).values(channel_moves=event_sequence.c.channel_moves + 1).returning(event_sequence.c.last_seq)
)


async def number_events(connection: AsyncConnection, count: int) -> int:
    """Take `count` event numbers for this transaction; returns the first. Holds the numbering until commit."""
    result = await connection.execute(_TAKE_NUMBERS, {"count": count})
    return first_number([tuple(result.one())], count)


def numbering(count: int) -> Read:
    """`number_events` as a read of a transaction's `write_last_after_reads`; its rows give the first number
    (`first_number`)."""
    return Read(_TAKE_NUMBERS, {"count": count})


def numbering_unless_moved(count: int) -> Read:
    """`numbering` for a publish whose subscribers were read before it waited for the numbering: it takes no number
    if a subscription moved onto or off Kafka since (`fence_publishes`), returning no row."""
    return Read(_TAKE_NUMBERS_UNLESS_MOVED, {"count": count})


async def fence_publishes(connection: AsyncConnection) -> int:
    """For a subscription moving onto or off Kafka: hold the numbering until this transaction commits and return the
    committed end of the log, once every publish that had taken numbers has committed.

    Publishes numbering later read the subscription as it is after the move; those that read it before and wait for
    the numbering meanwhile write nothing and are made again (`numbering_unless_moved`). So every event up to the
    end returned was published to the subscription as it was, every later one to it as it will be.
    """
    return int((await connection.execute(_COUNT_A_MOVE)).scalar_one())


def first_number(rows: Sequence[tuple[Any, ...]], count: int) -> int:
    """The first of the `count` numbers that `number_events`' read returned `rows` for."""
    return int(rows[0][0]) - count + 1


async def end_of_log(connection: AsyncConnection) -> int:
    """The number of the last committed published event."""
    return int((await connection.execute(select(event_sequence.c.last_seq))).scalar_one())


async def stream_backlog(connection: AsyncConnection) -> int:
    """How many events Kafka streams have yet to look at: those of their names past their positions, not paused."""
    end = await end_of_log(connection)
    paused = select(stream_pauses.c.from_seq).where(
        stream_pauses.c.subscription_id == kafka_streams.c.subscription_id,
        events.c.seq > stream_pauses.c.from_seq,
        or_(stream_pauses.c.to_seq.is_(None), events.c.seq <= stream_pauses.c.to_seq),
    )
    query = (
        select(func.count())
        .select_from(kafka_streams)
        .join(subscription_events, subscription_events.c.subscription_id == kafka_streams.c.subscription_id)
        .join(
            events,
            and_(
                events.c.name == subscription_events.c.event_name,
                events.c.seq > kafka_streams.c.position,
                events.c.seq <= end,
            ),
        )
        .where(not_(paused.exists()))
    )
    return int((await connection.execute(query)).scalar_one())
