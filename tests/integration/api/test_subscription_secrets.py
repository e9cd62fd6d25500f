"""Secrets stay secret: no token, SASL password, client key or signing secret in plain text in API responses
after creation, in the logs, or anywhere in the database; and signing secrets rotate with an overlap."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import LargeBinary, String, cast, select

from chargewire.clock import utcnow
from chargewire.devtools.certificates import generate_tls_files
from chargewire.runtime import Runtime
from chargewire.store.tables import metadata
from tests.conftest import TokenFactory, bearer

V2 = "/public-api/notifications/v2.0"
SASL_PASSWORD = "sasl-Password-7f3c9e1d-never-shown"
WEBHOOK: dict[str, Any] = {
    "via": "webhook",
    "notifications": ["BootNotification"],
    "webhook": {"callbackUrl": "http://127.0.0.1:9/hook"},
}


def _kafka_body(tmp_path: Path) -> tuple[dict[str, Any], str]:
    tls = generate_tls_files(tmp_path / "tls")
    client_key = tls.client_key_pem.read_text()
    body = {
        "via": "kafka",
        "notifications": ["SessionStartStopNotification"],
        "kafka": {
            "topic": "sessions",
            "brokers": ["127.0.0.1:9093"],
            "securityProtocol": "SASL_SSL",
            "saslMechanism": "SCRAM-SHA-256",
            "saslUsername": "chargewire",
            "saslPassword": SASL_PASSWORD,
            "caCertificate": tls.ca_pem.read_text(),
            "clientCertificate": tls.client_cert_pem.read_text(),
            "clientKey": client_key,
        },
    }
    return body, client_key


async def _database_dump(runtime: Runtime) -> list[str | bytes]:
    """Every value of every column of every table, as text or bytes."""
    values: list[str | bytes] = []
    async with runtime.database.reading() as connection:
        for table in metadata.sorted_tables:
            columns = [column if isinstance(column.type, LargeBinary) else cast(column, String) for column in table.c]
            for row in (await connection.execute(select(*columns))).all():
                values.extend(value for value in row if value is not None)
    return values


def _secret_forms(secret: str) -> list[str]:
    """The secret and a distinctive piece of it (a key's PEM lines would still leak it)."""
    body = "".join(line for line in secret.splitlines() if not line.startswith("-----"))
    return [secret, body[len(body) // 3 : len(body) // 3 + 24]] if body != secret else [secret]


async def test_no_secret_appears_in_responses_logs_or_database(
    api: httpx.AsyncClient,
    runtime: Runtime,
    token_factory: TokenFactory,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    admin_text = await token_factory("admin", name="admin")
    manager_text = await token_factory("notifications:manage", name="manager")
    kafka_body, client_key = _kafka_body(tmp_path)

    created_kafka = await api.post(V2, json=kafka_body, headers=bearer(manager_text))
    created_webhook = await api.post(V2, json=WEBHOOK, headers=bearer(manager_text))
    assert created_kafka.status_code == created_webhook.status_code == 201
    kafka_id, webhook_id = created_kafka.json()["data"]["id"], created_webhook.json()["data"]["id"]
    signing_secrets = [created_kafka.json()["data"]["signingSecret"], created_webhook.json()["data"]["signingSecret"]]
    rotated = await api.post(f"/api/v1/subscriptions/{webhook_id}/rotate-secret", headers=bearer(manager_text))
    assert rotated.status_code == 200
    signing_secrets.append(rotated.json()["data"]["signingSecret"])

    later: list[httpx.Response] = []
    for headers in (bearer(manager_text), bearer(admin_text)):
        later.append(await api.get(V2, headers=headers))
        later.append(await api.get(f"{V2}/{kafka_id}", headers=headers))
        later.append(await api.get(f"{V2}/{webhook_id}", headers=headers))
        later.append(await api.get("/public-api/notifications/v1.0", headers=headers))
    later.append(await api.put(f"{V2}/{kafka_id}", json=kafka_body, headers=bearer(manager_text)))
    later.append(await api.post(V2, json={**kafka_body, "via": "nope"}, headers=bearer(manager_text)))
    assert all(response.status_code < 500 for response in later)
    assert later[1].json()["data"]["kafka"]["saslPassword"] is None
    assert later[1].json()["data"]["kafka"]["clientKey"] is None

    secrets = [admin_text, manager_text, SASL_PASSWORD, *_secret_forms(client_key), *signing_secrets]
    responses = "\n".join(response.text for response in later)
    logs = caplog.text + "\n".join(str(record.__dict__) for record in caplog.records)
    stored = await _database_dump(runtime)
    # The scan sees inside JSON columns and ciphertexts, or it would prove nothing.
    assert any("SCRAM-SHA-256" in value for value in stored if isinstance(value, str))
    assert any(isinstance(value, bytes) for value in stored)
    for secret in secrets:
        assert secret not in responses
        assert secret not in logs
        for value in stored:
            assert (secret.encode() not in value) if isinstance(value, bytes) else (secret not in value)

    # Encrypted, not lost: the service can still use them.
    kafka_secrets = await runtime.subscriptions.kafka_secrets(kafka_id)
    assert (kafka_secrets.sasl_password, kafka_secrets.client_key) == (SASL_PASSWORD, client_key)


async def test_signing_secret_is_returned_once_and_rotation_keeps_the_old_one_for_the_overlap(
    api: httpx.AsyncClient, runtime: Runtime, token_factory: TokenFactory
) -> None:
    headers = bearer(await token_factory("notifications:manage"))
    created = (await api.post(V2, json=WEBHOOK, headers=headers)).json()["data"]
    first = created["signingSecret"]
    assert first.startswith("whsec_")
    assert "signingSecret" not in (await api.get(f"{V2}/{created['id']}", headers=headers)).json()["data"]

    response = await api.post(f"/api/v1/subscriptions/{created['id']}/rotate-secret", headers=headers)
    assert response.status_code == 200
    second = response.json()["data"]["signingSecret"]
    assert second.startswith("whsec_")
    assert second != first
    assert len(response.json()["data"]["previousSecretsExpireAt"]) == 1

    assert await runtime.subscriptions.signing_secrets(created["id"]) == [second, first]
    after_overlap = utcnow() + timedelta(seconds=runtime.settings.secret_rotation_overlap_s + 1)
    assert await runtime.subscriptions.signing_secrets(created["id"], after_overlap) == [second]


async def test_rotating_a_missing_subscription_is_404(api: httpx.AsyncClient, token_factory: TokenFactory) -> None:
    headers = bearer(await token_factory("admin"))
    response = await api.post("/api/v1/subscriptions/sub_01JD3Q9W8T2X6Z4C5V7B9N1M3K/rotate-secret", headers=headers)
    assert response.status_code == 404
    assert "message" in response.json()
