"""The subscription store on both backends: id-ordered pages, event-name rows kept in step, secrets sealed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from chargewire.clock import utcnow
from chargewire.ids import new_id
from chargewire.models import KafkaSecrets, KafkaTarget, Subscription, Via
from chargewire.runtime import Runtime
from chargewire.store.subscription_store import SubscriptionStore
from chargewire.store.tables import subscription_events


@pytest.fixture
def store(runtime: Runtime) -> SubscriptionStore:
    return SubscriptionStore(runtime.database, runtime.box)


@pytest.fixture
async def token_id(runtime: Runtime) -> str:
    return (await runtime.tokens.create("owner", ["notifications:manage"])).token.id


def _subscription(
    token_id: str, via: Via = Via.WEBHOOK, names: tuple[str, ...] = ("BootNotification",)
) -> Subscription:
    now = utcnow()
    return Subscription(
        id=new_id("sub"),
        via=via,
        notifications=names,
        token_id=token_id,
        api_version=2,
        created_at=now,
        updated_at=now,
        callback_url="http://127.0.0.1/" if via is Via.WEBHOOK else None,
        kafka=KafkaTarget(topic="t", brokers=("127.0.0.1:9092",)) if via is Via.KAFKA else None,
    )


async def _event_rows(runtime: Runtime, subscription_id: str) -> set[str]:
    query = select(subscription_events.c.event_name).where(subscription_events.c.subscription_id == subscription_id)
    async with runtime.database.reading() as connection:
        return {row.event_name for row in (await connection.execute(query)).all()}


async def test_pages_walk_forward_and_back_in_id_order(store: SubscriptionStore, token_id: str) -> None:
    ids = []
    for index in range(7):
        subscription = _subscription(token_id, Via.KAFKA if index % 3 == 0 else Via.WEBHOOK)
        await store.insert_subscription(subscription, None, "whsec_x")
        ids.append(subscription.id)
    ids.sort()
    first = await store.list_by_id(limit=3)
    second = await store.list_by_id(limit=3, after=first[-1].id)
    assert [s.id for s in first + second] == ids[:6]
    back = await store.list_by_id(limit=3, before=second[0].id)
    assert [s.id for s in back] == ids[:3]
    webhooks = await store.list_by_id(limit=10, via=Via.WEBHOOK)
    assert all(s.via is Via.WEBHOOK for s in webhooks)
    assert len(webhooks) == 4
    page, total = await store.list_numbered(offset=5, limit=5)
    assert ([s.id for s in page], total) == (ids[5:], 7)
    assert await store.list_by_id(limit=10, token_id="tok_someone_else") == []


async def test_replace_rewrites_the_event_rows_fan_out_reads(
    store: SubscriptionStore, runtime: Runtime, token_id: str
) -> None:
    subscription = _subscription(token_id, names=("BootNotification", "cdr.received"))
    await store.insert_subscription(subscription, None, "whsec_x")
    assert await _event_rows(runtime, subscription.id) == {"BootNotification", "cdr.received"}
    await store.replace_subscription(replace(subscription, notifications=("evse.changed",)), None)
    assert await _event_rows(runtime, subscription.id) == {"evse.changed"}
    assert await store.delete_subscription(subscription.id)
    assert await _event_rows(runtime, subscription.id) == set()
    assert not await store.delete_subscription(subscription.id)


async def test_claim_resend_allows_one_per_cooldown_and_none_while_disabled(
    store: SubscriptionStore, token_id: str
) -> None:
    subscription = _subscription(token_id)
    await store.insert_subscription(subscription, None, "whsec_x")
    now = utcnow()
    assert await store.claim_resend(subscription.id, now, 900)
    assert not await store.claim_resend(subscription.id, now + timedelta(seconds=899), 900)
    assert await store.claim_resend(subscription.id, now + timedelta(seconds=900), 900)
    await store.set_enabled(subscription.id, False, now, "test")
    assert not await store.claim_resend(subscription.id, now + timedelta(hours=1), 900)


async def test_rotation_keeps_earlier_secrets_until_their_own_expiry(store: SubscriptionStore, token_id: str) -> None:
    subscription = _subscription(token_id)
    await store.insert_subscription(subscription, None, "whsec_first")
    now = utcnow()
    await store.rotate_signing_secret(subscription.id, "whsec_second", now, 3600)
    valid = await store.rotate_signing_secret(subscription.id, "whsec_third", now + timedelta(minutes=30), 3600)
    assert valid is not None
    assert [(s.secret, s.expires_at) for s in valid] == [
        ("whsec_third", None),
        ("whsec_second", now + timedelta(minutes=90)),
        ("whsec_first", now + timedelta(hours=1)),
    ]
    later = await store.signing_secrets(subscription.id, now + timedelta(minutes=61))
    assert [s.secret for s in later] == ["whsec_third", "whsec_second"]
    assert await store.rotate_signing_secret("sub_missing", "whsec_x", now, 10) is None


async def test_kafka_secrets_are_sealed_and_come_back(store: SubscriptionStore, token_id: str) -> None:
    with_secrets, without = _subscription(token_id, Via.KAFKA), _subscription(token_id, Via.KAFKA)
    await store.insert_subscription(with_secrets, KafkaSecrets(sasl_password="pw", client_key=None), "whsec_x")
    await store.insert_subscription(without, KafkaSecrets(), "whsec_y")
    assert await store.kafka_secrets(with_secrets.id) == KafkaSecrets(sasl_password="pw")
    assert await store.kafka_secrets(without.id) is None
    stored = await store.get_subscription(with_secrets.id)
    assert stored is not None
    assert stored.kafka == with_secrets.kafka
