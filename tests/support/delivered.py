"""How many deliveries the log holds as delivered: for tests that wait for or check delivery (the queue depth
no longer counts delivered rows, so that it reads only the work left)."""

from __future__ import annotations

from sqlalchemy import func, select

from chargewire.models import DeliveryStatus
from chargewire.store.database import Database
from chargewire.store.tables import deliveries


async def delivered_count(database: Database) -> int:
    """The deliveries whose status is delivered."""
    query = select(func.count()).where(deliveries.c.status == DeliveryStatus.DELIVERED.value)
    async with database.reading() as connection:
        return int((await connection.execute(query)).scalar_one())
