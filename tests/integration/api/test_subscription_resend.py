"""Resend queues exactly the failed deliveries of the named events in the window, once; and fan-out at publish
follows a subscription's current notifications and enabled flag."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.runtime import Runtime
from chargewire.store.tables import deliveries
from tests.conftest import TokenFactory, bearer

V2 = "/public-api/notifications/v2.0"
RESEND = "/public-api/actions/notifications/v1.0/{id}/resend"
EXAMPLES = {name: event_type.example for name, event_type in load_event_types().items()}


def _body(*events: str, **extra: Any) -> dict[str, Any]:
    return {"via": "webhook", "notifications": list(events), "webhook": {"callbackUrl": "http://127.0.0.1:9/"}, **extra}


async def _deliveries(runtime: Runtime, subscription_id: str) -> dict[str, tuple[str, str, int | None]]:
    query = select(deliveries.c.event_id, deliveries.c.event_name, deliveries.c.status, deliveries.c.attempt_limit)
    async with runtime.database.reading() as connection:
        rows = (await connection.execute(query.where(deliveries.c.subscription_id == subscription_id))).all()
    return {row.event_id: (row.event_name, row.status, row.attempt_limit) for row in rows}


async def _fail_all(runtime: Runtime, attempts: int = 3) -> None:
    async with runtime.database.transaction() as connection:
        await connection.execute(update(deliveries).values(status="failed", attempt_count=attempts))


async def test_resend_queues_each_failed_delivery_of_the_named_events_for_one_more_attempt(
    api: httpx.AsyncClient, runtime: Runtime, token_factory: TokenFactory
) -> None:
    headers = bearer(await token_factory("notifications:manage"))
    created = (await api.post(V2, json=_body("BootNotification", "HardwareStatusNotification"), headers=headers)).json()
    subscription_id = created["data"]["id"]
    boot, status = await runtime.publisher.publish(
        [EXAMPLES["BootNotification"], EXAMPLES["HardwareStatusNotification"]]
    )
    await _fail_all(runtime)

    response = await api.post(
        RESEND.format(id=subscription_id), json={"notifications": ["BootNotification"]}, headers=headers
    )
    assert response.status_code == 202
    assert response.json()["data"]["queued"] == 1
    rows = await _deliveries(runtime, subscription_id)
    assert rows[boot] == ("BootNotification", "pending", 4)
    assert rows[status] == ("HardwareStatusNotification", "failed", None)


async def test_resend_leaves_failed_deliveries_outside_the_time_window(
    api: httpx.AsyncClient, runtime: Runtime, token_factory: TokenFactory
) -> None:
    headers = bearer(await token_factory("admin"))
    subscription_id = (await api.post(V2, json=_body("BootNotification"), headers=headers)).json()["data"]["id"]
    [event_id] = await runtime.publisher.publish([EXAMPLES["BootNotification"]])
    await _fail_all(runtime)
    future = (utcnow() + timedelta(hours=1)).isoformat()
    body = {"notifications": ["BootNotification"], "startTime": future}
    response = await api.post(RESEND.format(id=subscription_id), json=body, headers=headers)
    assert response.status_code == 202
    assert response.json()["data"]["queued"] == 0
    assert (await _deliveries(runtime, subscription_id))[event_id][1] == "failed"


async def test_publish_fans_out_to_the_current_notifications_of_enabled_subscriptions_only(
    api: httpx.AsyncClient, runtime: Runtime, token_factory: TokenFactory
) -> None:
    headers = bearer(await token_factory("admin"))
    subscription_id = (await api.post(V2, json=_body("BootNotification"), headers=headers)).json()["data"]["id"]
    [first] = await runtime.publisher.publish([EXAMPLES["BootNotification"]])
    await api.put(f"{V2}/{subscription_id}", json=_body("HardwareStatusNotification"), headers=headers)
    [boot, status] = await runtime.publisher.publish(
        [EXAMPLES["BootNotification"], EXAMPLES["HardwareStatusNotification"]]
    )
    await api.put(f"{V2}/{subscription_id}", json=_body("HardwareStatusNotification", enabled=False), headers=headers)
    [paused] = await runtime.publisher.publish([EXAMPLES["HardwareStatusNotification"]])

    delivered_events = set(await _deliveries(runtime, subscription_id))
    assert delivered_events == {first, status}
    assert boot not in delivered_events
    assert paused not in delivered_events


async def test_update_without_extension_fields_keeps_them(api: httpx.AsyncClient, token_factory: TokenFactory) -> None:
    headers = bearer(await token_factory("admin"))
    extras = {"enabled": False, "description": "depot A", "filter": {"chargePointId": {"$in": [1, 2]}}}
    created = (await api.post(V2, json=_body("BootNotification", **extras), headers=headers)).json()["data"]
    assert {key: created[key] for key in extras} == extras
    updated = (await api.put(f"{V2}/{created['id']}", json=_body("BootNotification"), headers=headers)).json()["data"]
    assert {key: updated[key] for key in extras} == extras
    cleared = await api.put(f"{V2}/{created['id']}", json=_body("BootNotification", filter=None), headers=headers)
    assert cleared.json()["data"]["filter"] is None


async def test_invalid_filter_is_422_naming_the_operator(api: httpx.AsyncClient, token_factory: TokenFactory) -> None:
    headers = bearer(await token_factory("admin"))
    response = await api.post(
        V2, json=_body("BootNotification", filter={"chargePointId": {"$regex": "x"}}), headers=headers
    )
    assert response.status_code == 422
    assert "filter.chargePointId.$regex" in response.json()["errors"]
