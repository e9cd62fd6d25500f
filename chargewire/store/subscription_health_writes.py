"""Every write to subscriptions' health (`failing_since`), from the outcomes of their deliveries' attempts.

A subscription with any success among a batch of attempt records is healthy again; one with only failures is
failing since the batch's last attempt, unless it already was. A worker records health with its attempts
(`delivery_store`), a Kafka stream with its batch's guarded writes (`kafka.stream_store`): both take the
statements from here, on their own connection. The rest of a subscription's row is `subscription_store`'s.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Update, bindparam, select, update

from chargewire.models import DeliveryStatus
from chargewire.store.delivery_records import AttemptRecord
from chargewire.store.dialects import StoreDialect
from chargewire.store.tables import deliveries, subscriptions


def health_updates(
    records: Sequence[AttemptRecord], dialect: StoreDialect, *, successes_carried: bool = False
) -> list[tuple[Update, dict[str, Any]]]:
    """The statements that record `records`' health with their parameters: a subscription with any success among
    them is healthy again, one with only failures is failing since the last attempt's start, unless it already
    was. The statements are built once per dialect. With `successes_carried`, the caller's UPDATE of the delivered
    rows carries the successes' part (`healthy_again_with`) and only the failures' is returned."""
    succeeded = {record.subscription_id for record in records if record.status is DeliveryStatus.DELIVERED}
    failing = {record.subscription_id for record in records} - succeeded
    healthy_again, failing_since = _health_updates(dialect)
    updates: list[tuple[Update, dict[str, Any]]] = []
    if succeeded and not successes_carried:
        updates.append((healthy_again, {"ids": dialect.ids_value(succeeded)}))
    if failing:
        since = records[-1].attempt.started_at
        updates.append((failing_since, {"ids": dialect.ids_value(failing), "since": since}))
    return updates


# Built once per statement: a worker records with it every few milliseconds.
@functools.cache
def healthy_again_with(delivered: Update, dialect: StoreDialect) -> Update:
    """`delivered`, an UPDATE of the deliveries bound as `ids` (`dialect.one_of`) that were delivered, which also
    makes their subscriptions healthy again, in a WITH (PostgreSQL's data-modifying WITH).

    The same subscriptions as `health_updates`' successes (those of the delivered rows, found by id whoever
    holds their lease now), in the same transaction, without a round trip of its own. The WITH reads the
    deliveries before the UPDATE changes them, which leaves their subscription ids as they were.
    """
    theirs = select(deliveries.c.subscription_id).where(dialect.one_of(deliveries.c.id, None))
    healthy_again = (
        update(subscriptions)
        .where(subscriptions.c.id.in_(theirs), subscriptions.c.failing_since.is_not(None))
        .values(failing_since=None)
    )
    return delivered.add_cte(healthy_again.cte("healthy_again"))


# Built once per dialect: a worker records health with every batch, and compiling them anew was a cost of each.
@functools.cache
def _health_updates(dialect: StoreDialect) -> tuple[Update, Update]:
    """(clear failing_since of the subscriptions `ids`, set it to `since` where unset), with `ids` bound."""
    ids = dialect.one_of(subscriptions.c.id, None)
    failing = subscriptions.c.failing_since
    healthy_again = update(subscriptions).where(ids, failing.is_not(None)).values(failing_since=None)
    since = bindparam("since", type_=failing.type)
    return healthy_again, update(subscriptions).where(ids, failing.is_(None)).values(failing_since=since)
