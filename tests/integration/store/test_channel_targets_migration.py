"""Migration 0012 moves stored targets and their secrets to channel-neutral columns, and every subscription
written before it reads back the same through the store, on both backends."""

from __future__ import annotations

import json
from dataclasses import asdict

import sqlalchemy as sa
from alembic import command
from sqlalchemy import Connection

from chargewire.clock import utcnow
from chargewire.models import KafkaSecrets, KafkaTarget, Subscription, Via
from chargewire.runtime import Runtime
from chargewire.store import migrate
from chargewire.store.tables import UtcDateTime

# The columns of `subscriptions` as revision 0011 wrote them (the rest are unchanged by 0012).
_SUBSCRIPTIONS_0011 = sa.table(
    "subscriptions",
    sa.column("id", sa.String),
    sa.column("api_version", sa.Integer),
    sa.column("via", sa.String),
    sa.column("notifications", sa.JSON),
    sa.column("callback_url", sa.String),
    sa.column("kafka", sa.JSON),
    sa.column("kafka_secrets_encrypted", sa.LargeBinary),
    sa.column("signing_secrets_encrypted", sa.LargeBinary),
    sa.column("token_id", sa.String),
    sa.column("enabled", sa.Boolean),
    sa.column("created_at", UtcDateTime),
    sa.column("updated_at", UtcDateTime),
)


def _downgrade_to(connection: Connection, revision: str) -> None:
    config = migrate.alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def _written_at_0011(token_id: str) -> tuple[Subscription, Subscription, KafkaSecrets]:
    now = utcnow().replace(microsecond=0)
    common = {"notifications": ("BootNotification",), "token_id": token_id, "api_version": 2}
    webhook = Subscription(
        id="sub_webhook", via=Via.WEBHOOK, created_at=now, updated_at=now, callback_url="https://a.test/", **common
    )
    target = KafkaTarget(topic="cw", brokers=("kafka.test:9093",), security_protocol="SASL_SSL", sasl_username="u")
    kafka = Subscription(id="sub_kafka", via=Via.KAFKA, created_at=now, updated_at=now, kafka=target, **common)
    return webhook, kafka, KafkaSecrets(sasl_password="pw", client_key="key")


def _row_0011(runtime: Runtime, subscription: Subscription, secrets: KafkaSecrets | None) -> dict[str, object]:
    box = runtime.box
    signing = [{"secret": "whsec_old", "expires_at": None}]
    return {
        "id": subscription.id,
        "api_version": subscription.api_version,
        "via": str(subscription.via),
        "notifications": list(subscription.notifications),
        "callback_url": subscription.callback_url,
        "kafka": asdict(subscription.kafka) if subscription.kafka else None,
        "kafka_secrets_encrypted": box.encrypt(json.dumps(asdict(secrets))) if secrets else None,
        "signing_secrets_encrypted": box.encrypt(json.dumps(signing)),
        "token_id": subscription.token_id,
        "enabled": True,
        "created_at": subscription.created_at,
        "updated_at": subscription.updated_at,
    }


async def test_subscriptions_written_at_0011_read_back_the_same_with_their_secrets_after_the_upgrade(
    runtime: Runtime,
) -> None:
    token_id = (await runtime.tokens.create("owner", ["admin"])).token.id
    webhook, kafka, secrets = _written_at_0011(token_id)
    async with runtime.database.transaction() as connection:
        await connection.run_sync(_downgrade_to, "0011")
        await connection.execute(
            sa.insert(_SUBSCRIPTIONS_0011), [_row_0011(runtime, webhook, None), _row_0011(runtime, kafka, secrets)]
        )

    await migrate.upgrade(runtime.database)

    store = runtime.subscription_store
    assert await store.get_subscription(webhook.id) == webhook
    assert await store.get_subscription(kafka.id) == kafka
    assert await store.target_secrets(kafka.id) == secrets
    assert await store.target_secrets(webhook.id) is None
    assert [s.secret for s in await store.signing_secrets(webhook.id, utcnow())] == ["whsec_old"]
