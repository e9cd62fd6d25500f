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

from sqlalchemy import JSON, ColumnElement, Update, any_, bindparam, func, select, update

from chargewire.models import DeliveryStatus
from chargewire.store.delivery_records import AttemptRecord
from chargewire.store.dialects import StoreDialect
from chargewire.store.tables import subscriptions


def health_updates(records: Sequence[AttemptRecord], dialect: StoreDialect) -> list[tuple[Update, dict[str, Any]]]:
    """The statements that record `records`' health with their parameters: a subscription with any success among
    them is healthy again, one with only failures is failing since the last attempt's start, unless it already
    was. The statements are built once per dialect."""
    healthy, failing = healthy_and_failing(records)
    healthy_again, failing_since = _health_updates(dialect)
    updates: list[tuple[Update, dict[str, Any]]] = []
    if healthy:
        updates.append((healthy_again, {"ids": dialect.ids_value(healthy)}))
    if failing:
        since = records[-1].attempt.started_at
        updates.append((failing_since, {"ids": dialect.ids_value(failing), "since": since}))
    return updates


def healthy_and_failing(records: Sequence[AttemptRecord]) -> tuple[list[str], list[str]]:
    """The subscriptions of `records` with any success among them, and those with only failures, each sorted."""
    succeeded = {record.subscription_id for record in records if record.status is DeliveryStatus.DELIVERED}
    return sorted(succeeded), sorted({record.subscription_id for record in records} - succeeded)


# Built once: a worker records with them on PostgreSQL every few milliseconds, in its record's one statement.
@functools.cache
def health_updates_of_lists() -> tuple[Update, Update]:
    """`health_updates`' two statements with the subscriptions bound as JSON lists of ids, "healthy" and
    "failing", and `since` bound: the planner reckons a JSON list at one size whatever it holds (an array bound
    is reckoned at its length), so one plan serves every record, where each was planned afresh."""
    failing = subscriptions.c.failing_since
    since = bindparam("since", type_=failing.type)
    healthy_again = update(subscriptions).where(_listed("healthy"), failing.is_not(None)).values(failing_since=None)
    return healthy_again, update(subscriptions).where(_listed("failing"), failing.is_(None)).values(failing_since=since)


def _listed(name: str) -> ColumnElement[bool]:
    listed = func.json_array_elements_text(bindparam(name, type_=JSON)).column_valued("listed_id")
    # As an array, found by primary key (see `delivery_writes.record_outcomes`).
    return subscriptions.c.id == any_(func.array(select(listed).scalar_subquery()))


# Built once per dialect: a worker records health with every batch, and compiling them anew was a cost of each.
@functools.cache
def _health_updates(dialect: StoreDialect) -> tuple[Update, Update]:
    """(clear failing_since of the subscriptions `ids`, set it to `since` where unset), with `ids` bound."""
    ids = dialect.one_of(subscriptions.c.id, None)
    failing = subscriptions.c.failing_since
    healthy_again = update(subscriptions).where(ids, failing.is_not(None)).values(failing_since=None)
    since = bindparam("since", type_=failing.type)
    return healthy_again, update(subscriptions).where(ids, failing.is_(None)).values(failing_since=since)
