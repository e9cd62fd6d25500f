"""The payload of PostgreSQL's wake-up NOTIFY: the deliveries a commit made due, or nothing, meaning "look".

A worker that hears which deliveries were made due leases exactly those in one statement
(`DeliveryStore.claim_announced`) instead of asking whether any is due and scanning for them. The payload groups
them by subscription, so that the worker can keep its per-subscription caps and leave out subscriptions it
excludes without asking the database: `sub_A=dlv_1,dlv_2;sub_B=dlv_3`. Ids are letters, digits and `_` only.

PostgreSQL refuses a payload of 8000 bytes or more; a set of deliveries that does not fit goes as an empty
payload, which every worker answers as it always did: it looks for whatever is due.

Assignments: a publish of a process without a worker may write its deliveries already leased to one listening
worker (`services.worker_assignments`); its payload then carries them whole, events' bytes included, as a JSON
object `{"due": <the names above>, "to": [[worker, until, [[delivery, event, subscription, name, entity,
received_at, payload], ...]], ...]}`, and that worker attempts them with no claim statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.dialects.base import Announced

# PostgreSQL's limit is "shorter than 8000 bytes" in the default configuration.
MAX_PAYLOAD_BYTES = 7999
_GROUPS = ";"
_SUBSCRIPTION = "="
_IDS = ","


def encoded(announced: Announced) -> str:
    """The payload naming `announced`, or "" (look) when there is none or it would not fit."""
    by_subscription: dict[str, list[str]] = {}
    for delivery_id, subscription_id in announced:
        by_subscription.setdefault(subscription_id, []).append(delivery_id)
    payload = _GROUPS.join(f"{sub}{_SUBSCRIPTION}{_IDS.join(ids)}" for sub, ids in by_subscription.items())
    # Ids are ASCII: characters are bytes.
    return payload if len(payload) <= MAX_PAYLOAD_BYTES else ""


def decoded(payload: str) -> list[tuple[str, str]]:
    """The (delivery id, subscription id) a payload names, in id order; empty for "look" or a payload not ours."""
    announced: list[tuple[str, str]] = []
    for group in filter(None, payload.split(_GROUPS)):
        subscription_id, separator, ids = group.partition(_SUBSCRIPTION)
        if not (separator and subscription_id and ids):
            return []
        announced.extend((delivery_id, subscription_id) for delivery_id in ids.split(_IDS))
    return sorted(announced)


@dataclass(frozen=True, slots=True)
class Assignment:
    """Deliveries a publish in another process wrote leased to one worker until `until`, with all the worker needs
    to attempt them (their events' bytes): it sends them as if it had claimed them, with no claim statement."""

    worker_id: str
    until: datetime
    deliveries: Sequence[ClaimedDelivery]


def assignment_bytes(assignment: Assignment) -> int:
    """The bytes `assignment` takes in a payload (a payload of it alone must be at most MAX_PAYLOAD_BYTES)."""
    return len(_dumps(_assignment_value(assignment))) + len(_ASSIGNED_OVERHEAD)


def encoded_with_assignments(due: str | None, assignments: Sequence[Assignment]) -> str:
    """The payload carrying `assignments` (which must fit) and, unless None, `due` (an `encoded` payload: names,
    or "" for "look")."""
    return _dumps({_DUE: due, _TO: [_assignment_value(assignment) for assignment in assignments]}).decode()


def decoded_assignments(payload: str, worker_id: str) -> tuple[list[tuple[str, str]], list[Assignment] | None, bool]:
    """What a payload names as due (as `decoded`), the assignments in it to `worker_id` (None: it carries none),
    and whether it wakes every worker (it names due deliveries or asks for a look; one of assignments alone does
    not)."""
    if not payload.startswith(_OBJECT):
        return decoded(payload), None, True
    value = orjson.loads(payload)
    mine = [
        Assignment(worker_id, datetime.fromisoformat(until), [_claimed(row) for row in rows])
        for to, until, rows in value[_TO]
        if to == worker_id
    ]
    due = value[_DUE]
    return ([], mine, False) if due is None else (decoded(due), mine, True)


def _assignment_value(assignment: Assignment) -> list[Any]:
    return [
        assignment.worker_id,
        assignment.until.isoformat(),
        [
            [
                d.id,
                d.event_id,
                d.subscription_id,
                d.event_name,
                d.entity_id,
                d.received_at.isoformat(),
                d.payload.decode(),
            ]
            for d in assignment.deliveries
        ],
    ]


def _claimed(row: list[Any]) -> ClaimedDelivery:
    delivery_id, event_id, subscription_id, name, entity_id, received_at, payload = row
    return ClaimedDelivery(
        delivery_id,
        event_id,
        subscription_id,
        name,
        0,
        None,
        payload.encode(),
        entity_id,
        datetime.fromisoformat(received_at),
    )


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value)


# A payload that carries assignments is a JSON object (the names-only payload never starts with "{").
_OBJECT = "{"
_DUE = "due"
_TO = "to"
# What a payload of one assignment adds around it: `{"due":null,"to":[` ... `]}`.
_ASSIGNED_OVERHEAD = '{"due":null,"to":[]}'
