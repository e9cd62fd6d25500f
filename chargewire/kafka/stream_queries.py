"""The stream store's reads that workers ask again and again, built once: which streams are ready and whether any
could be, and whether there is any work (the SQLite commit watcher asks after every commit of another connection)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Select,
    bindparam,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)

from chargewire.models import DeliveryStatus, Via
from chargewire.store.delivery_claims import DUE_DELIVERY_EXISTS
from chargewire.store.tables import (
    deliveries,
    event_sequence,
    events,
    kafka_streams,
    subscription_events,
    subscriptions,
)

_END_OF_LOG = select(event_sequence.c.last_seq).scalar_subquery()


def _ready_streams() -> Select[str, int]:
    """`ready_streams`' query, built once: workers ask it with every publish (`now` and `worker` are bound).

    A stream still leased to the asking worker is ready for it: the streamer starts no second run of a stream it
    is running, so such a stream is one whose run ended without handing the lease back, as when the database went
    away under it. Waiting for that lease to run out stalled the subscription for `worker_lease_s` after every
    database restart.
    """
    pending = select(deliveries.c.id).where(
        deliveries.c.subscription_id == kafka_streams.c.subscription_id,
        deliveries.c.status == DeliveryStatus.PENDING.value,
    )
    names = select(subscription_events.c.event_name).where(
        subscription_events.c.subscription_id == kafka_streams.c.subscription_id
    )
    unread = select(events.c.id).where(
        events.c.name.in_(names), events.c.seq > kafka_streams.c.position, events.c.seq <= _END_OF_LOG
    )
    return _behind(_END_OF_LOG).where(_STREAM_FOR_WORKER, ~pending.exists(), unread.exists())


def leasable_by(worker: str | BindParameter[str], now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """The stream has no lease, its lease has run out by `now`, or it is leased to `worker` already."""
    lease = kafka_streams.c
    return or_(lease.lease_owner.is_(None), lease.lease_until <= now, lease.lease_owner == worker)


def _enabled() -> Select[str, int]:
    """(subscription id, position) of the streams of enabled Kafka subscriptions."""
    return (
        select(kafka_streams.c.subscription_id, kafka_streams.c.position)
        .join(subscriptions, subscriptions.c.id == kafka_streams.c.subscription_id)
        .where(subscriptions.c.enabled.is_(True), subscriptions.c.via == Via.KAFKA.value)
    )


def _behind(end: int | ColumnElement[int]) -> Select[str, int]:
    """(subscription id, position) of the streams of enabled Kafka subscriptions that have not reached `end`."""
    return _enabled().where(kafka_streams.c.position < end)


def _look() -> CompoundSelect[str | None, int]:
    """`look`'s query: the ready streams, and one row without a subscription id when any enabled stream exists.

    One read where the streamer's timed look made two (ready streams, then whether any exists): with no Kafka
    subscription those two reads were the largest poll of an idle `serve`.
    """
    exists = select(null().label("subscription_id"), literal(0).label("position")).where(_enabled().exists())
    return union_all(READY_STREAMS, exists)


_NOW = bindparam("now", type_=kafka_streams.c.lease_until.type)
_STREAM_FOR_WORKER = leasable_by(bindparam("worker"), _NOW)
READY_STREAMS = _ready_streams()
LOOK = _look()
# The SQLite commit watcher asks these after every commit of another connection.
NEWEST_WORK = select(select(func.max(deliveries.c.id)).scalar_subquery(), _END_OF_LOG)
# (whether a delivery is due, whether a stream is behind): a watcher that saw deliveries due says so as it wakes.
WORK_DUE = select(DUE_DELIVERY_EXISTS, _behind(_END_OF_LOG).where(_STREAM_FOR_WORKER).exists())
