"""The payload of PostgreSQL's wake-up NOTIFY: the deliveries a commit made due, or nothing, meaning "look".

A worker that hears which deliveries were made due leases exactly those in one statement
(`DeliveryStore.claim_announced`) instead of asking whether any is due and scanning for them. The payload groups
them by subscription, so that the worker can keep its per-subscription caps and leave out subscriptions it
excludes without asking the database: `sub_A=dlv_1,dlv_2;sub_B=dlv_3`. Ids are letters, digits and `_` only.

PostgreSQL refuses a payload of 8000 bytes or more; a set of deliveries that does not fit goes as an empty
payload, which every worker answers as it always did: it looks for whatever is due.
"""

from __future__ import annotations

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
