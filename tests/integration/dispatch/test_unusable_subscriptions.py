"""A subscription whose configuration cannot be used fails its own deliveries, visibly; the others are delivered."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.devtools.certificates import generate_tls_files
from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import CreatedSubscription
from chargewire.services.tokens import CreatedToken
from tests.conftest import TEST_SECRET_KEY, bearer
from tests.integration.dispatch.conftest import Subscribe
from tests.support.foreign_secrets import encrypt_under_another_key
from tests.support.kafka_topics import consume_topic
from tests.support.receiver import Receiver, always

BOOT = load_event_types()["BootNotification"].example
EVENTS = 3


async def _subscribed_under_another_key(
    settings: Settings, runtime: Runtime, body: dict[str, object]
) -> CreatedSubscription:
    """A subscription whose stored secrets were encrypted under another CHARGEWIRE_SECRET_KEY."""
    owner = await runtime.tokens.create("elsewhere", ["notifications:manage"])
    created = await runtime.subscriptions.create(owner.token, body)
    await encrypt_under_another_key(settings.effective_database_url, TEST_SECRET_KEY, created.subscription.id)
    return created


async def _attempt_log(api: httpx.AsyncClient, token: str, subscription_id: str) -> list[dict[str, object]]:
    """Every attempt of the subscription's deliveries, read through the API once each delivery has one."""
    while True:
        listed = await api.get("/api/v1/deliveries", params={"subscription": subscription_id}, headers=bearer(token))
        deliveries = listed.json()["data"]
        if len(deliveries) == EVENTS and all(delivery["attempts"] >= 1 for delivery in deliveries):
            break
        await asyncio.sleep(0.05)
    log = []
    for delivery in deliveries:
        detail = await api.get(f"/api/v1/deliveries/{delivery['id']}", headers=bearer(token))
        log.extend(detail.json()["data"]["attemptLog"])
    return log


async def test_undecryptable_secrets_fail_only_their_own_subscriptions_deliveries(
    settings: Settings,
    runtime: Runtime,
    receiver: Receiver,
    subscribe: Subscribe,
    dispatcher: Dispatcher,
    api: httpx.AsyncClient,
) -> None:
    body = {"via": "webhook", "notifications": ["BootNotification"]}
    broken = await _subscribed_under_another_key(
        settings, runtime, body | {"webhook": {"callbackUrl": receiver.on("/broken", always(200))}}
    )
    await subscribe(receiver.on("/healthy", always(200)), "BootNotification")
    admin = (await runtime.tokens.create("admin", ["admin"])).text

    await runtime.publisher.publish([BOOT] * EVENTS)

    await receiver.wait_for(EVENTS, "/healthy")
    log = await asyncio.wait_for(_attempt_log(api, admin, broken.subscription.id), 20)
    assert {attempt["errorClass"] for attempt in log} == {"secret_undecryptable"}
    assert all("CHARGEWIRE_SECRET_KEY" in str(attempt["errorMessage"]) for attempt in log)
    assert receiver.on_path("/broken") == []


async def test_a_kafka_config_librdkafka_refuses_fails_only_its_own_deliveries(
    tmp_path: Path,
    runtime: Runtime,
    kafka_broker: KafkaBroker,
    receiver: Receiver,
    subscribe: Subscribe,
    owner: CreatedToken,
    dispatcher: Dispatcher,
    api: httpx.AsyncClient,
) -> None:
    tls = generate_tls_files(tmp_path / "tls")
    another_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    kafka = {
        "topic": "refused-config",
        "brokers": [kafka_broker.bootstrap("SSL")],
        "securityProtocol": "SSL",
        "caCertificate": tls.ca_pem.read_text(),
        # A certificate with a key that is not its own: each parses, librdkafka refuses the pair.
        "clientCertificate": tls.client_cert_pem.read_text(),
        "clientKey": another_key.decode(),
    }
    body = {"via": "kafka", "notifications": ["BootNotification"], "kafka": kafka}
    refused = await runtime.subscriptions.create(owner.token, body)
    await subscribe(receiver.on("/healthy", always(200)), "BootNotification")
    admin = (await runtime.tokens.create("admin", ["admin"])).text

    await runtime.publisher.publish([BOOT] * EVENTS)

    await receiver.wait_for(EVENTS, "/healthy")
    log = await asyncio.wait_for(_attempt_log(api, admin, refused.subscription.id), 60)
    assert {attempt["errorClass"] for attempt in log} == {"kafka_config_rejected"}
    assert all("ssl.key.pem" in str(attempt["errorMessage"]) for attempt in log)


async def test_a_kafka_stream_whose_secrets_do_not_decrypt_fails_alone_beside_a_healthy_stream(
    settings: Settings,
    runtime: Runtime,
    kafka_broker: KafkaBroker,
    owner: CreatedToken,
    dispatcher: Dispatcher,
    api: httpx.AsyncClient,
) -> None:
    def body(topic: str) -> dict[str, object]:
        kafka = {"topic": topic, "brokers": [kafka_broker.bootstrap("PLAINTEXT")]}
        return {"via": "kafka", "notifications": ["BootNotification"], "kafka": kafka}

    healthy_topic = f"healthy-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(healthy_topic, partitions=1)
    broken = await _subscribed_under_another_key(settings, runtime, body(f"broken-{uuid.uuid4().hex[:8]}"))
    await runtime.subscriptions.create(owner.token, body(healthy_topic))
    admin = (await runtime.tokens.create("admin", ["admin"])).text

    await runtime.publisher.publish([{**BOOT, "chargePointId": 7000 + index} for index in range(EVENTS)])

    records = await asyncio.to_thread(consume_topic, kafka_broker, healthy_topic, EVENTS)
    assert len({value for _key, value in records}) == EVENTS
    log = await asyncio.wait_for(_attempt_log(api, admin, broken.subscription.id), 60)
    assert {attempt["errorClass"] for attempt in log} == {"secret_undecryptable"}
