"""A Kafka subscription's stream kept in step with the subscription, in the transaction that changes it.

A stream is born at the end of the log when its subscription becomes a Kafka one, a pause opens while the
subscription is disabled and closes when it is enabled, and the stream ends, its unread backlog turned into
delivery rows, when the subscription stops being a Kafka one (`follow_subscription`, called by
`store.subscription_store`). This module is the only writer of `stream_pauses`; of `kafka_streams` it writes
the rows' coming and going, and `stream_store` their position and lease.

A move onto or off Kafka fences the log (`event_log.fence_publishes`, decision 0011): publishes in flight
commit first, so the end it reads splits the log exactly where the publishes' view of the subscription changes.
Without it, an event numbered but not committed when the move read the end, by a publish that had read the
subscription as a Kafka one, was neither in the backlog turned into rows nor given a row of its own.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Delete, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.kafka.streams import PayloadCheck, Stream
from chargewire.models import Via
from chargewire.store.delivery_writes import insert_for_stream_backlog
from chargewire.store.event_log import end_of_log, fence_publishes
from chargewire.store.tables import events, kafka_streams, stream_pauses, subscription_events


async def follow_subscription(
    connection: AsyncConnection,
    subscription_id: str,
    was: tuple[str, bool] | None,
    becomes: tuple[str, bool],
    keeps: PayloadCheck | None = None,
) -> None:
    """Keep a subscription's stream in step with its (via, enabled), in the transaction that changes them.

    A new Kafka subscription streams from the end of the log: it gets what is published after it exists.
    Disabling opens a pause at the end of the log and enabling closes it, so what was published meanwhile
    is skipped, while the backlog from before the pause is still delivered, as the row queue does. A Kafka
    subscription that becomes a webhook takes its unread backlog along as rows (those whose payload `keeps`
    accepts), and its stream ends.
    """
    was_kafka = was is not None and was[0] is Via.KAFKA
    if becomes[0] is not Via.KAFKA:
        if was_kafka:
            await _backlog_to_rows(connection, subscription_id, keeps or _keep_all)
            await connection.execute(delete(kafka_streams).where(kafka_streams.c.subscription_id == subscription_id))
            await connection.execute(delete(stream_pauses).where(stream_pauses.c.subscription_id == subscription_id))
        return
    # A new subscription has had no publish deliver to it: only a move needs the publishes in flight settled.
    end = await (fence_publishes(connection) if was is not None and not was_kafka else end_of_log(connection))
    enabled = becomes[1]
    if not was_kafka:
        await connection.execute(insert(kafka_streams).values(subscription_id=subscription_id, position=end))
        if not enabled:
            await _open_pause(connection, subscription_id, end)
    elif was is not None and was[1] != enabled:
        if enabled:
            await _close_pause(connection, subscription_id, end)
        else:
            await _open_pause(connection, subscription_id, end)


async def _backlog_to_rows(connection: AsyncConnection, subscription_id: str, keeps: PayloadCheck) -> None:
    """Pending delivery rows, due now, for the events a stream has yet to read."""
    query = select(kafka_streams.c.position).where(kafka_streams.c.subscription_id == subscription_id)
    position = (await connection.execute(query.with_for_update())).scalar_one_or_none()
    if position is None:
        return
    stream = Stream(subscription_id, int(position), await pauses(connection, subscription_id))
    # The backlog up to the committed end first, then, with publishing held (`fence_publishes`), only what the
    # publishes in flight added: a long backlog does not hold publishing while it becomes rows.
    read_to = await _rows_up_to(connection, stream, keeps, await end_of_log(connection))
    await _rows_up_to(connection, replace(stream, position=read_to), keeps, await fence_publishes(connection))


async def _rows_up_to(connection: AsyncConnection, stream: Stream, keeps: PayloadCheck, end: int) -> int:
    """Rows for the stream's unread events up to `end` (those `keeps` accepts, outside its pauses); returns `end`."""
    names = select(subscription_events.c.event_name).where(
        subscription_events.c.subscription_id == stream.subscription_id
    )
    backlog = (
        select(events.c.seq, events.c.id, events.c.name, events.c.payload)
        .where(events.c.name.in_(names), events.c.seq > stream.position, events.c.seq <= end)
        .order_by(events.c.seq)
    )
    unread = [
        (event_id, name)
        for seq, event_id, name, payload in (await connection.execute(backlog)).all()
        if not stream.skips(seq) and keeps(bytes(payload))
    ]
    await insert_for_stream_backlog(connection, stream.subscription_id, unread)
    return end


def _keep_all(_payload: bytes) -> bool:
    return True


def drop_passed_pauses(stream: Stream) -> Delete:
    """The statement that forgets the pauses a stream has passed: they cover only events behind its position."""
    return delete(stream_pauses).where(
        stream_pauses.c.subscription_id == stream.subscription_id, stream_pauses.c.to_seq <= stream.position
    )


async def pauses(connection: AsyncConnection, subscription_id: str) -> tuple[tuple[int, int | None], ...]:
    """The stretches of the log a subscription's stream skips, as they are in this transaction."""
    query = select(stream_pauses.c.from_seq, stream_pauses.c.to_seq).where(
        stream_pauses.c.subscription_id == subscription_id
    )
    return tuple((int(start), None if end is None else int(end)) for start, end in (await connection.execute(query)))


async def _open_pause(connection: AsyncConnection, subscription_id: str, at: int) -> None:
    open_pause = select(stream_pauses.c.from_seq).where(
        stream_pauses.c.subscription_id == subscription_id, stream_pauses.c.to_seq.is_(None)
    )
    if (await connection.execute(open_pause)).first() is None:
        await connection.execute(insert(stream_pauses).values(subscription_id=subscription_id, from_seq=at))


async def _close_pause(connection: AsyncConnection, subscription_id: str, at: int) -> None:
    is_open = (stream_pauses.c.subscription_id == subscription_id, stream_pauses.c.to_seq.is_(None))
    # A pause during which nothing was published skips nothing.
    await connection.execute(delete(stream_pauses).where(*is_open, stream_pauses.c.from_seq >= at))
    await connection.execute(update(stream_pauses).where(*is_open).values(to_seq=at))
