"""The v2.0 Notifications API, driven by the contract-only client: paths, bodies, status codes and shapes."""

from __future__ import annotations

from typing import Any

import pytest
from notifications_api_client import (
    CALLBACK,
    EVENTS,
    V2,
    NotificationsClient,
    check_error,
    kafka_body,
    webhook_body,
)


async def test_webhook_subscription_is_created_read_updated_and_deleted(admin: NotificationsClient) -> None:
    created = await admin.subscribe(webhook_body())
    assert created["via"] == "webhook"
    assert created["notifications"] == EVENTS[:2]
    assert created["webhook"] == {"callbackUrl": CALLBACK}
    assert "kafka" not in created

    assert (await admin.read(created["id"]))["webhook"] == {"callbackUrl": CALLBACK}

    updated = await admin.update(created["id"], webhook_body("http://127.0.0.1:10/other", EVENTS[2:]))
    assert updated["id"] == created["id"]
    assert updated["notifications"] == EVENTS[2:]
    assert (await admin.read(created["id"]))["webhook"]["callbackUrl"] == "http://127.0.0.1:10/other"

    await admin.unsubscribe(created["id"])
    response = await admin.call("GET", f"{V2}/{created['id']}")
    assert response.status_code == 404
    check_error(response)


async def test_kafka_subscription_gets_contract_defaults_and_never_shows_the_sasl_password(
    admin: NotificationsClient,
) -> None:
    plain = await admin.subscribe(kafka_body())
    assert plain["kafka"]["topic"] == "charging-events"
    assert plain["kafka"]["brokers"] == ["kafka-1.example.net:9092"]
    assert plain["kafka"]["compressionCodec"] == "gzip"
    assert plain["kafka"]["securityProtocol"] == "PLAINTEXT"
    assert plain["kafka"]["saslMechanism"] == "PLAIN"
    assert "webhook" not in plain

    sasl = await admin.subscribe(
        kafka_body(
            securityProtocol="SASL_SSL",
            saslMechanism="SCRAM-SHA-512",
            saslUsername="chargewire",
            saslPassword="kafka-password-1",
            compressionCodec="lz4",
        )
    )
    assert sasl["kafka"]["securityProtocol"] == "SASL_SSL"
    assert sasl["kafka"]["saslMechanism"] == "SCRAM-SHA-512"
    assert sasl["kafka"]["saslUsername"] == "chargewire"
    assert sasl["kafka"]["saslPassword"] is None
    assert sasl["kafka"]["compressionCodec"] == "lz4"
    assert (await admin.read(sasl["id"]))["kafka"]["saslPassword"] is None


async def test_kafka_update_that_sends_back_the_null_password_keeps_the_stored_one(admin: NotificationsClient) -> None:
    created = await admin.subscribe(
        kafka_body(securityProtocol="SASL_SSL", saslUsername="user", saslPassword="kafka-password-2")
    )
    read_back = await admin.read(created["id"])
    read_back["kafka"]["topic"] = "renamed-topic"
    updated = await admin.update(created["id"], read_back)
    assert updated["kafka"]["topic"] == "renamed-topic"
    assert updated["kafka"]["saslPassword"] is None


async def test_kafka_accepts_ssl_and_sasl_plaintext_protocols(admin: NotificationsClient) -> None:
    ssl = await admin.subscribe(kafka_body(securityProtocol="SSL"))
    assert ssl["kafka"]["securityProtocol"] == "SSL"
    sasl = await admin.subscribe(kafka_body(securityProtocol="SASL_PLAINTEXT", saslUsername="u", saslPassword="p"))
    assert sasl["kafka"]["securityProtocol"] == "SASL_PLAINTEXT"


async def test_client_sent_id_and_unknown_fields_are_ignored(admin: NotificationsClient) -> None:
    body = {**webhook_body(), "id": "client-chosen-id", "somethingNew": {"nested": True}}
    created = await admin.subscribe(body)
    assert created["id"] != "client-chosen-id"
    assert "somethingNew" not in created


async def test_list_follows_next_links_across_more_than_100_subscriptions_without_gaps(
    admin: NotificationsClient,
) -> None:
    created = [(await admin.subscribe(webhook_body(events=[EVENTS[i % 3]])))["id"] for i in range(105)]

    default_pages = [page async for page in admin.list_all()]
    assert [len(page["data"]) for page in default_pages] == [100, 5]
    assert default_pages[0]["meta"]["per_page"] == 100
    assert default_pages[0]["meta"]["path"].endswith(V2)
    assert default_pages[0]["links"]["next"].startswith(V2 + "?")
    assert default_pages[-1]["links"]["next"] is None
    assert default_pages[-1]["meta"]["next_cursor"] is None
    assert default_pages[0]["meta"]["prev_cursor"] is None

    small_pages = [page async for page in admin.list_all(per_page=8)]
    listed = [item["id"] for page in small_pages for item in page["data"]]
    assert len(small_pages) == 14
    assert listed == sorted(set(listed), key=listed.index)  # no duplicates
    assert set(listed) == set(created)  # no gaps
    assert listed == [item["id"] for page in default_pages for item in page["data"]]

    backwards: list[str] = []
    url = small_pages[-1]["links"]["prev"]
    while url:
        page = await admin.list_page(url)
        backwards = [item["id"] for item in page["data"]] + backwards
        url = page["links"]["prev"]
    assert backwards == listed[: len(backwards)]
    assert len(backwards) == len(listed) - len(small_pages[-1]["data"])


@pytest.mark.parametrize("per_page", ["0", "101", "many"])
async def test_per_page_outside_1_to_100_is_422_naming_per_page(admin: NotificationsClient, per_page: str) -> None:
    response = await admin.call("GET", f"{V2}?per_page={per_page}")
    assert response.status_code == 422
    assert "per_page" in check_error(response)["errors"]


async def test_forged_cursor_is_422_naming_cursor(admin: NotificationsClient) -> None:
    response = await admin.call("GET", f"{V2}?cursor=not-a-cursor")
    assert response.status_code == 422
    assert "cursor" in check_error(response)["errors"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_missing_subscription_is_404_with_a_message(admin: NotificationsClient, method: str) -> None:
    body = webhook_body() if method == "PUT" else None
    response = await admin.call(method, f"{V2}/sub_01JD3Q9W8T2X6Z4C5V7B9N1M3K", body)
    assert response.status_code == 404
    check_error(response)


INVALID_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("no via", {"notifications": EVENTS[:1], "webhook": {"callbackUrl": CALLBACK}}, "via"),
    ("unknown via", {**webhook_body(), "via": "sms"}, "via"),
    ("no notifications", {"via": "webhook", "webhook": {"callbackUrl": CALLBACK}}, "notifications"),
    ("empty notifications", webhook_body(events=[]), "notifications"),
    ("non-string notification", {**webhook_body(), "notifications": [42]}, "notifications.0"),
    ("unknown notification", webhook_body(events=["BootNotification", "NoSuchEvent"]), "notifications.1"),
    ("duplicate notification", webhook_body(events=["BootNotification", "BootNotification"]), "notifications.1"),
    ("no webhook object", {"via": "webhook", "notifications": EVENTS[:1]}, "webhook"),
    ("no callbackUrl", {"via": "webhook", "notifications": EVENTS[:1], "webhook": {}}, "webhook.callbackUrl"),
    ("ftp callbackUrl", webhook_body("ftp://127.0.0.1/x"), "webhook.callbackUrl"),
    ("not a URL", webhook_body("not a url"), "webhook.callbackUrl"),
    ("501-character callbackUrl", webhook_body("http://127.0.0.1/" + "a" * 484), "webhook.callbackUrl"),
    ("no kafka object", {"via": "kafka", "notifications": EVENTS[:1]}, "kafka"),
    ("no topic", {"via": "kafka", "notifications": EVENTS[:1], "kafka": {"brokers": ["k:9092"]}}, "kafka.topic"),
    ("no brokers", {"via": "kafka", "notifications": EVENTS[:1], "kafka": {"topic": "t"}}, "kafka.brokers"),
    ("broker without port", kafka_body(brokers=["kafka-1.example.net"]), "kafka.brokers.0"),
    ("second broker bad port", kafka_body(brokers=["a:9092", "b:99999"]), "kafka.brokers.1"),
    ("unknown codec", kafka_body(compressionCodec="zstd"), "kafka.compressionCodec"),
    ("unknown protocol", kafka_body(securityProtocol="TLS"), "kafka.securityProtocol"),
    ("unknown mechanism", kafka_body(securityProtocol="SASL_SSL", saslMechanism="GSSAPI"), "kafka.saslMechanism"),
    ("SASL without password", kafka_body(securityProtocol="SASL_SSL", saslUsername="u"), "kafka.saslPassword"),
    ("SASL without username", kafka_body(securityProtocol="SASL_SSL", saslPassword="p"), "kafka.saslUsername"),
]


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in INVALID_BODIES], ids=[i for i, _, _ in INVALID_BODIES]
)
async def test_invalid_body_is_422_naming_the_field(
    admin: NotificationsClient, body: dict[str, Any], field: str
) -> None:
    response = await admin.call("POST", V2, body)
    assert response.status_code == 422
    assert field in check_error(response)["errors"]


async def test_invalid_update_is_422_and_changes_nothing(admin: NotificationsClient) -> None:
    created = await admin.subscribe(webhook_body())
    response = await admin.call("PUT", f"{V2}/{created['id']}", webhook_body("gopher://127.0.0.1/"))
    assert response.status_code == 422
    assert "webhook.callbackUrl" in check_error(response)["errors"]
    assert (await admin.read(created["id"]))["webhook"]["callbackUrl"] == CALLBACK


async def test_unknown_event_names_are_listed_with_a_suggestion(admin: NotificationsClient) -> None:
    response = await admin.call("POST", V2, webhook_body(events=["BootNotificaton", "ZZZ"]))
    errors = check_error(response)["errors"]
    assert "BootNotificaton" in errors["notifications.0"][0]
    assert "BootNotification" in errors["notifications.0"][0]
    assert "ZZZ" in errors["notifications.1"][0]


async def test_missing_or_unknown_token_is_401_with_a_message(admin: NotificationsClient) -> None:
    bare = await admin.http.get(V2)
    assert bare.status_code == 401
    check_error(bare)
    wrong = await admin.http.get(V2, headers={"Authorization": "Bearer cw_not-a-real-token"})
    assert wrong.status_code == 401
    check_error(wrong)


async def test_token_without_notifications_scope_is_403_unauthorized(publisher: NotificationsClient) -> None:
    for method, body in (("GET", None), ("POST", webhook_body())):
        response = await publisher.call(method, V2, body)
        assert response.status_code == 403
        check_error(response)
        assert "notifications:manage scope" in response.json()["message"]


async def test_every_response_carries_rate_limit_headers_and_the_excess_is_429(limited: NotificationsClient) -> None:
    first = await limited.call("GET", V2)
    limit = int(first.headers["X-RateLimit-Limit"])
    remaining = [int(first.headers["X-RateLimit-Remaining"])]
    for _ in range(limit - 1):
        response = await limited.call("GET", V2)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == str(limit)
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
    assert remaining == list(range(limit - 1, -1, -1))

    over = await limited.call("POST", V2, webhook_body())
    assert over.status_code == 429
    assert check_error(over)["message"] == "Too Many Attempts."
    assert over.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(over.headers["Retry-After"]) <= 60
