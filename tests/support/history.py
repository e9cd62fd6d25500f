"""History rows for retention tests: events published with their deliveries ended in a chosen state."""

from __future__ import annotations

import itertools

from sqlalchemy import func, insert, select, update

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.ids import new_id
from chargewire.models import DeliveryStatus, Via
from chargewire.runtime import Runtime
from chargewire.store.tables import attempts, deliveries

BOOT = load_event_types()["BootNotification"].example
_charge_points = itertools.count(7000)


async def subscribe_to_boots(runtime: Runtime, via: Via = Via.WEBHOOK) -> str:
    """A subscription to boot notifications, by webhook or Kafka (to an address nothing listens on)."""
    owner = await runtime.tokens.create("owner", ["notifications:manage"])
    body: dict[str, object] = {"via": via.value, "notifications": ["BootNotification"]}
    if via is Via.KAFKA:
        body["kafka"] = {"topic": "boots", "brokers": ["127.0.0.1:9"]}
    else:
        body["webhook"] = {"callbackUrl": "http://127.0.0.1:9/boots"}
    return (await runtime.subscriptions.create(owner.token, body)).subscription.id


def boots(count: int) -> list[dict[str, object]]:
    """`count` boot notifications, each of a charge point of its own."""
    return [{**BOOT, "chargePointId": next(_charge_points)} for _ in range(count)]


async def publish_with_outcome(runtime: Runtime, count: int, status: DeliveryStatus, **values: object) -> list[str]:
    """Publish `count` events; every delivery of them ends in `status` after one attempt row. Returns event ids."""
    event_ids = await runtime.publisher.publish(boots(count))
    chosen = deliveries.c.event_id.in_(event_ids)
    async with runtime.database.transaction() as connection:
        await connection.execute(
            update(deliveries).where(chosen).values(status=status.value, attempt_count=1, **values)
        )
        delivery_ids = (await connection.scalars(select(deliveries.c.id).where(chosen))).all()
        await connection.execute(insert(attempts), [attempt_row(delivery_id) for delivery_id in delivery_ids])
    return event_ids


def attempt_row(delivery_id: str) -> dict[str, object]:
    """An attempts row of `delivery_id`, made now."""
    return {
        "id": new_id("att"),
        "delivery_id": delivery_id,
        "number": 1,
        "started_at": utcnow(),
        "duration_ms": 2.0,
        "outcome": "delivered",
        "request_headers": {},
    }


async def count_in(runtime: Runtime, table_column: object, ids: list[str]) -> int:
    """How many rows have `table_column` in `ids`."""
    async with runtime.database.reading() as connection:
        query = select(func.count()).where(table_column.in_(ids))  # type: ignore[attr-defined]
        return int((await connection.execute(query)).scalar_one())
