"""Subscribing Kafka to a broker on a private, loopback, link-local or metadata address is refused, naming the
broker's field, unless the operator's allow-list admits it (the test settings allow 127.0.0.0/8 and ::1)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import TokenFactory, bearer

V2 = "/public-api/notifications/v2.0"
PUBLIC_BROKER = "8.8.8.8:9092"  # an IP literal, so nothing is resolved or connected to at subscribe time
BLOCKED_EVERYWHERE = ["10.0.0.1:9092", "169.254.169.254:9092", "192.168.1.20:9093", "[fd00:ec2::254]:9092"]
LOOPBACK = ["127.0.0.1:9092", "[::1]:9092", "localhost:9092"]


def _body(*brokers: str) -> dict[str, object]:
    return {"via": "kafka", "notifications": ["BootNotification"], "kafka": {"topic": "t", "brokers": list(brokers)}}


@pytest.mark.parametrize("broker", BLOCKED_EVERYWHERE + LOOPBACK)
async def test_non_public_broker_is_422_on_its_index_without_an_allow_list(
    strict_api: httpx.AsyncClient, token_factory: TokenFactory, broker: str
) -> None:
    response = await strict_api.post(V2, json=_body(PUBLIC_BROKER, broker), headers=bearer(await token_factory()))
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["kafka.brokers.1"]
    assert "blocked address" in response.json()["errors"]["kafka.brokers.1"][0]


@pytest.mark.parametrize("broker", LOOPBACK)
async def test_allow_list_admits_loopback_brokers(
    api: httpx.AsyncClient, token_factory: TokenFactory, broker: str
) -> None:
    response = await api.post(V2, json=_body(PUBLIC_BROKER, broker), headers=bearer(await token_factory()))
    assert response.status_code == 201
    assert response.json()["data"]["kafka"]["brokers"] == [PUBLIC_BROKER, broker]


@pytest.mark.parametrize("broker", BLOCKED_EVERYWHERE)
async def test_allow_list_for_loopback_does_not_admit_other_private_brokers(
    api: httpx.AsyncClient, token_factory: TokenFactory, broker: str
) -> None:
    response = await api.post(V2, json=_body(broker), headers=bearer(await token_factory()))
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["kafka.brokers.0"]


async def test_update_is_guarded_too(api: httpx.AsyncClient, token_factory: TokenFactory) -> None:
    headers = bearer(await token_factory())
    created = (await api.post(V2, json=_body("127.0.0.1:9092"), headers=headers)).json()["data"]
    update = await api.put(f"{V2}/{created['id']}", json=_body("127.0.0.1:9092", "10.0.0.1:9092"), headers=headers)
    assert update.status_code == 422
    assert list(update.json()["errors"]) == ["kafka.brokers.1"]
    kept = (await api.get(f"{V2}/{created['id']}", headers=headers)).json()["data"]
    assert kept["kafka"]["brokers"] == ["127.0.0.1:9092"]


async def test_unresolvable_broker_name_is_accepted_and_checked_again_at_delivery(
    strict_api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    response = await strict_api.post(V2, json=_body("broker.invalid:9092"), headers=bearer(await token_factory()))
    assert response.status_code == 201


async def test_broker_name_idna_cannot_encode_is_422_not_500(
    api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    response = await api.post(V2, json=_body("a" * 64 + ".example.com:9092"), headers=bearer(await token_factory()))
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["kafka.brokers.0"]
