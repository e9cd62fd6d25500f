"""Idempotency keys of publishes: the one module that writes `idempotency_keys`.

A key is claimed inside the publish's own transaction (`claim_keys`), so it is stored if and only if the events
are. The primary key (token, key) decides a race between processes: the loser's insert fails (on PostgreSQL
after waiting for the winner's commit), its transaction rolls back with nothing published, and it reads the
winner's result instead. Plain INSERT and a unique constraint behave alike on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.errors import IdempotencyKeyTaken
from chargewire.store.database import Database
from chargewire.store.tables import idempotency_keys


@dataclass(frozen=True, slots=True)
class IdempotentPublish:
    """A publish stored under an Idempotency-Key: who sent it, what it held, and the event ids it was answered."""

    token_id: str
    key: str
    request_hash: str
    event_ids: Sequence[str]


async def claim_keys(connection: AsyncConnection, claims: Sequence[IdempotentPublish], now: datetime) -> None:
    """Store `claims` in the transaction `connection` began; IdempotencyKeyTaken if any key is stored already.

    Call it before any other write of the transaction: a claim that waits for another process's uncommitted
    key then holds no lock that process needs. Sorted, so two transactions claiming the same keys take them in
    the same order and cannot deadlock.
    """
    rows = [
        {
            "token_id": claim.token_id,
            "key": claim.key,
            "request_hash": claim.request_hash,
            "event_ids": list(claim.event_ids),
            "created_at": now,
        }
        for claim in sorted(claims, key=lambda claim: (claim.token_id, claim.key))
    ]
    try:
        await connection.execute(insert(idempotency_keys), rows)
    except IntegrityError as error:
        # The only constraint of the table is its primary key: the error means a key was taken.
        raise IdempotencyKeyTaken() from error


class IdempotencyStore:
    """Reads stored publishes by key, and deletes those past their retention."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def find(self, token_id: str, key: str) -> IdempotentPublish | None:
        """The publish stored under (`token_id`, `key`), or None."""
        statement = select(idempotency_keys.c.request_hash, idempotency_keys.c.event_ids).where(
            idempotency_keys.c.token_id == token_id, idempotency_keys.c.key == key
        )
        async with self._database.reading() as connection:
            row = (await connection.execute(statement)).first()
        if row is None:
            return None
        return IdempotentPublish(token_id, key, row.request_hash, row.event_ids)

    async def delete_created_before(self, cutoff: datetime, limit: int) -> int:
        """Delete up to `limit` of the oldest keys created before `cutoff`; returns how many were deleted.

        Bounded, so that a sweep never holds SQLite's write lock for long.
        """
        oldest = (
            select(idempotency_keys.c.token_id, idempotency_keys.c.key)
            .where(idempotency_keys.c.created_at < cutoff)
            .order_by(idempotency_keys.c.created_at)
            .limit(limit)
        )
        statement = delete(idempotency_keys).where(
            tuple_(idempotency_keys.c.token_id, idempotency_keys.c.key).in_(oldest)
        )
        async with self._database.transaction() as connection:
            result = await connection.execute(statement)
        return int(result.rowcount)
