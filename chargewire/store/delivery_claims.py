"""How a worker picks due deliveries and leases them: the due scan within each subscription's cap, a Kafka
subscription's rows in publishing order, the deliveries a wake-up announced, and the lease read back with its
events' payloads. `DeliveryStore` runs these in a claim's transaction (`StoreDialect.claim_transaction`), each
statement through its `Reader`; the lease statements are `delivery_writes`'.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, Update, and_, bindparam, func, select

from chargewire.ids import first_id_at, made_at_ms
from chargewire.models import DeliveryStatus, Via
from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.delivery_writes import claim_announced_statement, claim_due_statement, claim_due_values
from chargewire.store.dialects import StoreDialect
from chargewire.store.dialects.base import Announced, Read, Reader
from chargewire.store.tables import deliveries, events, subscriptions

# How many due rows one claim looks at, per row it may take: room to skip past saturated subscriptions.
_SCAN_FACTOR = 4
EVENT_PREFIX = "evt"
# How long before an announced delivery its event's id was surely made (in the same publish, moments before).
EVENT_MADE_BEFORE_S = 3600


@dataclass(frozen=True)
class ClaimRequest:
    """What a worker's claim asks for: up to `limit` deliveries leased to `worker_id` until `lease_until` (due at
    `now`), at most `per_subscription[via]` of any one subscription, none of `excluded_subscriptions`."""

    worker_id: str
    now: datetime
    lease_until: datetime
    limit: int
    per_subscription: Mapping[str, int]
    excluded_subscriptions: Collection[str] = ()


async def claim_scanned(read: Reader, dialect: StoreDialect, request: ClaimRequest) -> list[ClaimedDelivery]:
    """Lease the due deliveries the due scan finds for `request` (`DeliveryStore.claim_due_deliveries`)."""
    excluded = request.excluded_subscriptions
    if excluded and not await _others_enabled(read, dialect, excluded):
        return []
    scan = _due_scan(dialect, excluded)
    chosen = await _pick_due(read, scan, request.now, request.limit, request.per_subscription)
    chosen = await _in_publishing_order(read, dialect, request.now, chosen)
    if not chosen:
        return []
    chosen_ids = [id_ for id_, _sub, _via in chosen]
    lease = claim_due_statement(dialect)
    claimed = await _lease_with_payloads(read, dialect, lease, chosen_ids, request)
    return claimed_deliveries(claimed)


def chosen_announced(announced: Announced, request: ClaimRequest) -> list[str]:
    """The ids of the first of the announced webhook deliveries `request` may take, within its caps and exclusions."""
    excluded = request.excluded_subscriptions
    rows = [(id_, sub, Via.WEBHOOK.value) for id_, sub in announced if sub not in excluded]
    caps = {str(via): cap for via, cap in request.per_subscription.items()}
    chosen, _capped = _within_caps(rows, request.limit, caps, min(caps.values()))
    return [id_ for id_, _sub, _via in chosen]


async def claim_listed(
    read: Reader, dialect: StoreDialect, delivery_ids: Sequence[str], request: ClaimRequest
) -> list[ClaimedDelivery]:
    """Lease those of `delivery_ids` still pending, due and of an enabled webhook subscription, with their payloads."""
    lease = claim_announced_statement(dialect)
    window = announced_events_window(delivery_ids)
    claimed = await _lease_with_payloads(read, dialect, lease, delivery_ids, request, window)
    return claimed_deliveries(claimed)


def lease_values(dialect: StoreDialect, delivery_ids: Sequence[str], request: ClaimRequest) -> dict[str, Any]:
    """The values `claim_due_statement` binds to lease `delivery_ids` for `request`."""
    return claim_due_values(dialect, delivery_ids, request.worker_id, request.now, request.lease_until)


# Built once: an idle worker asks it with every publish. `now` is bound.
DUE_DELIVERY_EXISTS = (
    select(deliveries.c.id)
    .where(
        deliveries.c.status == DeliveryStatus.PENDING.value,
        deliveries.c.next_attempt_at <= bindparam("now", type_=deliveries.c.next_attempt_at.type),
    )
    .exists()
)
# The first entry of the due index (status, next_attempt_at): one index seek.
NEXT_DUE = select(func.min(deliveries.c.next_attempt_at)).where(deliveries.c.status == DeliveryStatus.PENDING.value)


def claimed_deliveries(rows: Sequence[tuple[Any, ...]]) -> list[ClaimedDelivery]:
    """The leased rows with their events' (payload, entity id, received at) as the deliveries a worker sends."""
    return [
        ClaimedDelivery(id_, event_id, subscription_id, name, count, limit, bytes(payload), entity_id, received_at)
        for id_, event_id, subscription_id, name, count, limit, payload, entity_id, received_at in rows
    ]


def _due_scan(dialect: StoreDialect, excluded: Collection[str]) -> Read:
    """Due deliveries in due order: (id, subscription id, via), for `_pick_due` to cap and limit; rows another
    worker is claiming are skipped (`StoreDialect.skip_locked`). `now` and `window` (how many) are still to bind."""
    if not excluded:
        return Read(_every_due_scan(dialect), {})
    # Leaving subscriptions out, it walks past all of their due rows (`_others_enabled`).
    return Read(_scan_leaving_out(dialect), {"ids": dialect.ids_value(excluded)}, bounded=False)


# Built once per dialect: a worker claims with it after every wake-up, and building a statement cost a claim more
# than the statement's own trip to the database (5% of a worker's time at 50 events/s).
@functools.cache
def _every_due_scan(dialect: StoreDialect) -> Select[str, str, str]:
    return _in_due_order(dialect, _due_rows())


# Built once per dialect, as the due scan. The subscriptions left out are bound as `ids`.
@functools.cache
def _scan_leaving_out(dialect: StoreDialect) -> Select[str, str, str]:
    return _in_due_order(dialect, _due_rows().where(~dialect.one_of(deliveries.c.subscription_id, None)))


def _due_rows() -> Select[Any]:
    # Joined to subscriptions: a disabled one's deliveries wait, still pending, until it is enabled again.
    return (
        select(deliveries.c.id, deliveries.c.subscription_id, subscriptions.c.via)
        .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
        .where(
            deliveries.c.status == DeliveryStatus.PENDING.value,
            deliveries.c.next_attempt_at <= bindparam("now", type_=deliveries.c.next_attempt_at.type),
            subscriptions.c.enabled.is_(True),
        )
    )


def _in_due_order(dialect: StoreDialect, scan: Select[Any]) -> Select[Any]:
    # Ties on the due time go by id, which is publish order: a batch's events keep their order per entity. The
    # limit is bound too, so that the statement is the same for every window (compiled once).
    ordered = scan.order_by(deliveries.c.next_attempt_at, deliveries.c.id).limit(bindparam("window", type_=Integer))
    return dialect.skip_locked(ordered, deliveries)


async def _others_enabled(read: Reader, dialect: StoreDialect, excluded: Collection[str]) -> bool:
    """Whether any enabled subscription is left besides `excluded`.

    When none is, the scan is not run: leaving subscriptions out, it walks past all of their due rows, and
    with one saturated subscriber and a million pending that took 200-400 ms on SQLite, holding the write
    lock, and 0.4-1.3 s on PostgreSQL (a sequential scan, as the statistics say nothing else is left), once
    a second, for nothing.
    """
    return bool(await read(Read(_another_enabled(dialect), {"ids": dialect.ids_value(excluded)})))


# Built once per dialect, as the due scan. The subscriptions left out are bound as `ids`.
@functools.cache
def _another_enabled(dialect: StoreDialect) -> Select[str]:
    others = ~dialect.one_of(subscriptions.c.id, None)
    return select(subscriptions.c.id).where(subscriptions.c.enabled.is_(True), others).limit(1)


async def _pick_due(
    read: Reader,
    scan: Read,
    now: datetime,
    limit: int,
    per_subscription: Mapping[str, int],
) -> list[tuple[str, str, str]]:
    """Up to `limit` rows from `scan`, in its order, at most `per_subscription[via]` of any one subscription.

    The first look reads `limit` rows; a wider one follows only when a subscription reached its cap among
    them, so that a full subscription does not hide the others' work behind it. Capping here rather than
    with a window function in SQL costs a tenth: on SQLite the ranked query took 10 µs per claimed row.
    """
    caps = {str(via): cap for via, cap in per_subscription.items()}
    chosen: list[tuple[str, str, str]] = []
    for window in (limit, limit * _SCAN_FACTOR):
        rows = await read(replace(scan, parameters={**scan.parameters, "now": now, "window": window}))
        chosen, capped = _within_caps(rows, limit, caps, min(caps.values()))
        if len(chosen) == limit or not capped or len(rows) < window:
            break
    return chosen


def _within_caps(
    rows: Sequence[tuple[str, str, str]], limit: int, caps: Mapping[str, int], default_cap: int
) -> tuple[list[tuple[str, str, str]], bool]:
    """The first `limit` rows that keep each subscription within its via's cap; and whether any was left out."""
    taken: dict[str, int] = {}
    chosen: list[tuple[str, str, str]] = []
    capped = False
    for id_, subscription_id, via in rows:
        count = taken.get(subscription_id, 0)
        if count >= caps.get(via, default_cap):
            capped = True
            continue
        taken[subscription_id] = count + 1
        chosen.append((id_, subscription_id, via))
        if len(chosen) == limit:
            break
    return chosen, capped


async def _in_publishing_order(
    read: Reader, dialect: StoreDialect, now: datetime, chosen: list[tuple[str, str, str]]
) -> list[tuple[str, str, str]]:
    """`chosen` with each Kafka subscription's rows replaced by as many of its oldest pending rows, up to the
    first one that is not due: one entity's records are retried in publishing order (issue 24).

    Each failed record has its own jittered retry time, so due order is not publishing order, and a row
    leased to a worker is not due either: nothing published after a row that waits goes before it. A Kafka
    subscription has few pending rows (its stream waits while it has any), so reading all of them is cheap.
    A row another worker is claiming (locked, `StoreDialect.unlocked`) ends the prefix too.
    """
    wanted: dict[str, int] = {}
    for _id, subscription_id, via in chosen:
        if via == Via.KAFKA.value:
            wanted[subscription_id] = wanted.get(subscription_id, 0) + 1
    if not wanted:
        return chosen
    values = {"ids": dialect.ids_value(wanted), "now": now}
    rows = await read(Read(_pending_of(dialect), values))
    free = await dialect.unlocked(read, _pending_ids_of(dialect), values, deliveries)
    heads: list[tuple[str, str, str]] = []
    blocked: set[str] = set()
    for subscription_id, id_, due in rows:
        if subscription_id in blocked or not due or (free is not None and id_ not in free):
            blocked.add(subscription_id)
        elif wanted[subscription_id] > 0:
            wanted[subscription_id] -= 1
            heads.append((id_, subscription_id, Via.KAFKA.value))
    return [row for row in chosen if row[2] != Via.KAFKA.value] + heads


# Built once per dialect, as the due scan: (subscription id, id, whether due) of the pending rows of the
# subscriptions bound as `ids`, in publishing order; `now` is bound.
@functools.cache
def _pending_of(dialect: StoreDialect) -> Select[str, str, bool]:
    now = bindparam("now", type_=deliveries.c.next_attempt_at.type)
    return (
        select(deliveries.c.subscription_id, deliveries.c.id, (deliveries.c.next_attempt_at <= now).label("due"))
        .where(dialect.one_of(deliveries.c.subscription_id, None), deliveries.c.status == DeliveryStatus.PENDING.value)
        .order_by(deliveries.c.subscription_id, deliveries.c.id)
    )


# Built once per dialect: `_pending_of`'s ids alone, for `StoreDialect.unlocked`.
@functools.cache
def _pending_ids_of(dialect: StoreDialect) -> Select[str]:
    return _pending_of(dialect).with_only_columns(deliveries.c.id)


async def _lease_with_payloads(
    read: Reader,
    dialect: StoreDialect,
    lease: Update,
    delivery_ids: Sequence[str],
    request: ClaimRequest,
    events_window: tuple[str, str] | None = None,
) -> list[tuple[Any, ...]]:
    """Lease these deliveries by `lease` (`claim_due_statement` or a narrower one) and read their events'
    payloads: the leased rows, each with its event's (payload, entity id, received at), in id order. On
    PostgreSQL one statement (the UPDATE in a WITH, joined to the events), one round trip where two were; with
    `events_window`, the range of ids their events are expected in (`announced_events_window`)."""
    values = lease_values(dialect, delivery_ids, request)
    if dialect.updates_in_with and events_window is not None:
        values["events_from"], values["events_to"] = events_window
        rows = await read(Read(with_payloads_within(lease), values))
        return await _with_missing_payloads(read, dialect, sorted(rows))
    if dialect.updates_in_with:
        return sorted(await read(Read(_with_payloads(lease), values)))
    # (id, event id, subscription id, event name, attempt count, attempt limit), in id order (publish order).
    claimed = sorted(await read(Read(lease, values)))
    payloads = await _event_payloads(read, dialect, {row[1] for row in claimed})
    return [(*row, *payloads[row[1]]) for row in claimed]


# Built once per lease statement, as the due scan. `claim_due_statement`'s values are bound.
@functools.cache
def _with_payloads(lease: Update) -> Select[Any]:
    leased = lease.cte("leased")
    return select(*leased.c, events.c.payload, events.c.entity_id, events.c.received_at).join_from(
        leased, events, events.c.id == leased.c.event_id
    )


# Built once per lease statement. `claim_due_statement`'s values, `events_from` and `events_to` are bound.
@functools.cache
def with_payloads_within(lease: Update) -> Select[Any]:
    """`_with_payloads`, reading events only in a range of ids (an outer join: a row whose event lies outside it
    is still returned, without its payload): PostgreSQL then plans the join on that range's partitions alone,
    where it planned an index probe of every day partition of events, 0.4-0.7 ms a claim."""
    leased = lease.cte("leased")
    joined = and_(
        events.c.id == leased.c.event_id, events.c.id.between(bindparam("events_from"), bindparam("events_to"))
    )
    return select(*leased.c, events.c.payload, events.c.entity_id, events.c.received_at).outerjoin_from(
        leased, events, joined
    )


async def _with_missing_payloads(
    read: Reader, dialect: StoreDialect, rows: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """`rows` with the payloads a windowed join left out read apart (an event older than its window)."""
    missing = missing_payloads(rows)
    if not missing:
        return rows
    return with_payloads_read(rows, await _event_payloads(read, dialect, missing))


def missing_payloads(rows: Sequence[tuple[Any, ...]]) -> set[str]:
    """The event ids whose payloads a windowed lease (`with_payloads_within`) left out."""
    return {row[1] for row in rows if row[6] is None}


def with_payloads_read(
    rows: Sequence[tuple[Any, ...]], payloads: Mapping[str, tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """`rows` with the payloads a windowed lease left out filled in from `payloads` (event id -> its columns)."""
    return [(*row[:6], *payloads[row[1]]) if row[6] is None else row for row in rows]


def announced_events_window(delivery_ids: Sequence[str]) -> tuple[str, str]:
    """The ids the events of these announced deliveries lie between: a publish makes its events' ids, then its
    deliveries', in one process, moments apart (`EVENT_MADE_BEFORE_S` is generous)."""
    first_ms = made_at_ms(min(delivery_ids)) - EVENT_MADE_BEFORE_S * 1000
    return first_id_at(EVENT_PREFIX, first_ms), first_id_at(EVENT_PREFIX, made_at_ms(max(delivery_ids)) + 1)


async def _event_payloads(
    read: Reader, dialect: StoreDialect, event_ids: Collection[str]
) -> dict[str, tuple[bytes, str | None, datetime]]:
    rows = await read(Read(payloads_statement(dialect), {"ids": dialect.ids_value(event_ids)}))
    return {event_id: (bytes(payload), entity_id, received_at) for event_id, payload, entity_id, received_at in rows}


# Built once per dialect, as the due scan. `ids` is bound; rows are (event id, payload, entity id, received at).
@functools.cache
def payloads_statement(dialect: StoreDialect) -> Select[str, bytes, str | None, datetime]:
    return select(events.c.id, events.c.payload, events.c.entity_id, events.c.received_at).where(
        dialect.one_of(events.c.id, None)
    )
