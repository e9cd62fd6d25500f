"""Marked dialect difference: a worker's announced claim on PostgreSQL, sent on asyncpg past SQLAlchemy's cursor.

The statement is `delivery_claims.claim_listed`'s (the lease in a WITH, joined to its events' payloads within a
window of ids), compiled once and sent on the asyncpg connection itself, which prepares it once per connection.
Through SQLAlchemy's AsyncConnection and adapter it was a fifth of a worker's samples at 200 events/s (the
adapter's prepare-and-execute 15%).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import asyncpg
from sqlalchemy import Dialect

from chargewire.store.delivery_claims import (
    ClaimRequest,
    announced_events_window,
    claimed_deliveries,
    lease_values,
    missing_payloads,
    payloads_statement,
    with_payloads_read,
    with_payloads_within,
)
from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.delivery_writes import claim_announced_statement
from chargewire.store.dialects import StoreDialect
from chargewire.store.dialects.postgresql_compiled import DriverStatement, compiled_for_driver

WHAT = "the announced claim"


async def claim_listed_on_driver(
    driver: asyncpg.Connection,
    dialects: tuple[StoreDialect, Dialect],
    delivery_ids: Sequence[str],
    request: ClaimRequest,
) -> list[ClaimedDelivery]:
    """`delivery_claims.claim_listed` on `driver`, outside a transaction block: one statement, one round trip (a
    second only for an event older than its window)."""
    lease, payloads = _compiled(*dialects)
    values = lease_values(dialects[0], delivery_ids, request)
    values["events_from"], values["events_to"] = announced_events_window(delivery_ids)
    rows = sorted(await lease.fetch(driver, values))
    missing = missing_payloads(rows)
    if missing:
        read = await payloads.fetch(driver, {"ids": list(missing)})
        rows = with_payloads_read(rows, {row[0]: row[1:] for row in read})
    return claimed_deliveries(rows)


@functools.lru_cache(maxsize=8)
def _compiled(dialect: StoreDialect, driver_dialect: Dialect) -> tuple[DriverStatement, DriverStatement]:
    """The lease with its payloads, and the read of payloads it left out, for `driver_dialect`."""
    lease = with_payloads_within(claim_announced_statement(dialect))
    return compiled_for_driver(lease, driver_dialect), compiled_for_driver(payloads_statement(dialect), driver_dialect)
